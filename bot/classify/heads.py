"""Linear heads over sentence embeddings, with temperature-scaled confidence.

A head is a multinomial logistic regression (``W x + b``, plus ``L·V`` when the
heads also read hashed character n-grams ``L``, see :mod:`bot.classify.lexical`)
whose logits are divided by a temperature fitted on a validation split of the
training data, so that the top probability is a calibrated confidence. The dense
weights are stored as plain JSON lines (floats): small, diffable, no pickle. The
n-gram weights and IDF go to a sidecar ``.lexical.npz`` (float16, only the
n-grams ever seen), whose SHA-256 the JSON header records.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.classify.lexical import N_FEATURES, Lexical, SparseRows


@dataclass
class Head:
    """One trained linear head.

    Attributes:
        name: ``"category"`` or ``"sentiment"``.
        classes: label per output row.
        weight: ``[n_classes, dim]``.
        bias: ``[n_classes]``.
        temperature: logits are divided by this before the softmax.
        meta: free-form training facts (data sizes, metrics, settings).
        lexical_weight: ``[N_FEATURES, n_classes]`` weights of the character n-grams,
            or ``None`` for a head that reads the embedding only.
    """

    name: str
    classes: list[str]
    weight: np.ndarray
    bias: np.ndarray
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    lexical_weight: np.ndarray | None = None

    def logits(self, x: np.ndarray, lexical: SparseRows | None = None) -> np.ndarray:
        """Raw scores from embeddings ``x`` and, for a lexical head, the n-gram matrix.

        Raises:
            ValueError: the head reads n-grams and ``lexical`` is missing.
        """
        z = np.asarray(x @ self.weight.T + self.bias, dtype=np.float64)
        if self.lexical_weight is not None:
            if lexical is None:
                raise ValueError(f"the {self.name} head also reads character n-grams")
            z += np.asarray(lexical @ self.lexical_weight, dtype=np.float64)
        return z

    def proba(self, x: np.ndarray, lexical: SparseRows | None = None) -> np.ndarray:
        """Calibrated class probabilities ``[n, n_classes]``."""
        return softmax(self.logits(x, lexical) / self.temperature)

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "classes": self.classes,
                "temperature": self.temperature,
                "bias": [round(float(v), 6) for v in self.bias],
                "weight": [[round(float(v), 6) for v in row] for row in self.weight],
                "meta": self.meta,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> Head:
        data = json.loads(line)
        return cls(
            name=data["name"],
            classes=list(data["classes"]),
            weight=np.asarray(data["weight"], dtype=np.float32),
            bias=np.asarray(data["bias"], dtype=np.float32),
            temperature=float(data["temperature"]),
            meta=dict(data.get("meta", {})),
        )


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def mean_nll(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the classes ``y`` under ``softmax(logits)``."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of ``y`` (grid + refine)."""

    def nll(t: float) -> float:
        return mean_nll(logits / t, y)

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 60))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.8, best * 1.25, 30)
    return float(min(fine, key=nll))


def fit_prior_shift(logits: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Temperature and one logit offset per class minimising the NLL of ``y``.

    The offsets move each class's prior towards its share among the rows given
    (the calibration split: real tweets, whose class mix differs from the training
    mix of written examples and general-tweet noise). ``l2`` penalises the squared
    offsets, so a class with a handful of calibration rows barely moves.

    Returns:
        ``(temperature, offsets)``: calibrated logits are ``logits / t + offsets``.
    """
    from scipy.optimize import minimize

    def loss(p: np.ndarray) -> float:
        return mean_nll(logits / np.exp(p[0]) + p[1:], y) + l2 * float((p[1:] ** 2).sum())

    start = np.r_[np.log(fit_temperature(logits, y)), np.zeros(logits.shape[1])]
    best = minimize(loss, start, method="L-BFGS-B").x
    return float(np.exp(best[0])), np.asarray(best[1:])


def fit_head(
    name: str,
    x: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    c: float = 4.0,
    calibration_share: float = 0.2,
    calibration: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    balance: float = 1.0,
    lexical: SparseRows | None = None,
    prior_shift: float | None = None,
    seed: int = 13,
) -> Head:
    """Train a logistic-regression head and calibrate it.

    Each class is weighted ``(n / (k · n_class)) ** balance``: 1 is scikit-learn's
    "balanced", 0 leaves the natural mix, and in between rare classes get some
    of the boost without costing the frequent ones much accuracy.

    The temperature is fitted on held-out rows of a first fit: the rows marked
    in the boolean mask ``calibration`` when given, else a random
    ``calibration_share``. The final weights are then refitted on all rows
    (temperature kept), so no labelled row is wasted.

    ``lexical`` (the ``[n, N_FEATURES]`` rows of
    :meth:`bot.classify.lexical.Lexical.transform`) makes one regression over
    ``[x, lexical]``; its n-gram half becomes ``Head.lexical_weight``.

    ``prior_shift`` (an L2 penalty) also fits one logit offset per class on the
    held-out rows (:func:`fit_prior_shift`), folded into the bias: for held-out rows
    drawn from the distribution the head will serve rather than the training mix.
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    dim = x.shape[1]
    if lexical is None:
        features = x
    else:
        features = sparse.hstack([sparse.csr_matrix(x), lexical.csr()]).tocsr()

    index = {label: i for i, label in enumerate(classes)}
    y = np.asarray([index[label] for label in labels])
    if calibration is not None:
        cal, fit = np.flatnonzero(calibration), np.flatnonzero(~calibration)
    else:
        perm = np.random.default_rng(seed).permutation(len(y))
        n_cal = int(len(y) * calibration_share)
        cal, fit = perm[:n_cal], perm[n_cal:]

    def train(rows: np.ndarray) -> Any:
        present, counts = np.unique(y[rows], return_counts=True)
        per_class = np.ones(len(classes))
        per_class[present] = (len(rows) / (len(present) * counts)) ** balance
        weights = per_class[y[rows]]
        if sample_weight is not None:
            weights = weights * sample_weight[rows]
        model = LogisticRegression(C=c, max_iter=3000)
        model.fit(features[rows], y[rows], sample_weight=weights)
        return model

    temperature, offsets = 1.0, np.zeros(len(classes))
    if len(cal) >= 20 and len(set(y[fit].tolist())) == len(classes):
        first = train(fit)
        held_out = first.decision_function(features[cal])
        if prior_shift is None:
            temperature = fit_temperature(held_out, y[cal])
        else:
            temperature, offsets = fit_prior_shift(held_out, y[cal], prior_shift)
    final = train(np.arange(len(y)))
    weight, bias = _full_weights(final, len(classes))
    bias = (bias + offsets * temperature).astype(np.float32)  # (z + o·t) / t = z / t + o
    lexical_weight = None if lexical is None else np.ascontiguousarray(weight[:, dim:].T)
    return Head(name, list(classes), weight[:, :dim].copy(), bias, temperature,
                lexical_weight=lexical_weight)  # fmt: skip


def _full_weights(model: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    coef = np.asarray(model.coef_, dtype=np.float32)
    bias = np.asarray(model.intercept_, dtype=np.float32)
    if coef.shape[0] == 1 and n_classes == 2:  # sklearn's binary shape
        coef = np.vstack([-coef / 2, coef / 2])
        bias = np.asarray([-bias[0] / 2, bias[0] / 2], dtype=np.float32)
    full = np.zeros((n_classes, coef.shape[1]), dtype=np.float32)
    full_bias = np.full(n_classes, -1e4, dtype=np.float32)
    for row, cls in enumerate(model.classes_):
        full[int(cls)] = coef[row]
        full_bias[int(cls)] = bias[row]
    return full, full_bias


@dataclass
class Heads:
    """The category and sentiment heads plus the encoder they were trained on.

    ``lexical`` is the n-gram featuriser of the heads that read n-grams (those with
    a ``lexical_weight``), or ``None`` when both read the embedding only.
    """

    category: Head
    sentiment: Head
    encoder: str
    backend: str
    lexical: Lexical | None = None

    def features(self, texts: Sequence[str]) -> SparseRows | None:
        """The n-gram matrix the heads read for ``texts`` (``None`` without n-grams)."""
        return None if self.lexical is None else self.lexical.transform(texts)

    def save(self, path: Path) -> None:
        header: dict[str, Any] = {"encoder": self.encoder, "backend": self.backend}
        if self.lexical is not None:
            blob = self._lexical_blob()
            sidecar = lexical_path(path)
            sidecar.write_bytes(blob)
            header["lexical"] = {"file": sidecar.name, "sha256": hashlib.sha256(blob).hexdigest()}
        else:  # no stale n-gram weights beside embedding-only heads
            lexical_path(path).unlink(missing_ok=True)
        path.write_text(
            "\n".join([json.dumps(header), self.category.to_json(), self.sentiment.to_json()])
            + "\n",
            "utf-8",
        )

    def _lexical_blob(self) -> bytes:
        assert self.lexical is not None
        arrays: dict[str, np.ndarray] = {"idf": self.lexical.idf.astype(np.float16)}
        for head in (self.category, self.sentiment):
            if head.lexical_weight is None:
                continue
            rows = np.flatnonzero(np.abs(head.lexical_weight).max(axis=1) > 0)
            arrays[f"{head.name}_rows"] = rows.astype(np.int32)
            arrays[f"{head.name}_weight"] = head.lexical_weight[rows].astype(np.float16)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: Path) -> Heads:
        """Read heads written by :meth:`save`.

        Raises:
            ValueError: the n-gram sidecar is missing or is not the one the heads were
                saved with.
        """
        lines = [ln for ln in path.read_text("utf-8").splitlines() if ln.strip()]
        header = json.loads(lines[0])
        heads = {h.name: h for h in (Head.from_json(ln) for ln in lines[1:])}
        lexical = None
        if "lexical" in header:
            sidecar = path.parent / header["lexical"]["file"]
            if not sidecar.exists():
                raise ValueError(f"heads at {path} need {sidecar.name}, which is missing")
            blob = sidecar.read_bytes()
            if hashlib.sha256(blob).hexdigest() != header["lexical"]["sha256"]:
                raise ValueError(
                    f"{sidecar.name} is not the one the heads at {path} were saved with"
                )
            data = np.load(io.BytesIO(blob))
            lexical = Lexical(data["idf"].astype(np.float32))
            for name, head in heads.items():
                if f"{name}_rows" not in data:
                    continue
                weight = np.zeros((N_FEATURES, len(head.classes)), dtype=np.float32)
                weight[data[f"{name}_rows"]] = data[f"{name}_weight"]
                head.lexical_weight = weight
        return cls(
            heads["category"], heads["sentiment"], header["encoder"], header["backend"], lexical
        )


def lexical_path(heads_path: Path) -> Path:
    """The n-gram sidecar of a heads file: ``heads.jsonl`` -> ``heads.lexical.npz``."""
    return heads_path.with_name(heads_path.stem + ".lexical.npz")
