"""Linear heads over frozen sentence embeddings, with temperature-scaled confidence.

A head is a multinomial logistic regression (``W x + b``) whose logits are
divided by a temperature fitted on a validation split of the training data, so
that the top probability is a calibrated confidence. Heads are stored as plain
JSON lines (weights as float lists): small, diffable, no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


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
    """

    name: str
    classes: list[str]
    weight: np.ndarray
    bias: np.ndarray
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.weight.T + self.bias, dtype=np.float64)

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities ``[n, n_classes]``."""
        return softmax(self.logits(x) / self.temperature)

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


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of ``y`` (grid + refine)."""

    def nll(t: float) -> float:
        p = softmax(logits / t)
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 60))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.8, best * 1.25, 30)
    return float(min(fine, key=nll))


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
    """
    from sklearn.linear_model import LogisticRegression

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
        model.fit(x[rows], y[rows], sample_weight=weights)
        return model

    temperature = 1.0
    if len(cal) >= 20 and len(set(y[fit].tolist())) == len(classes):
        first = train(fit)
        temperature = fit_temperature(first.decision_function(x[cal]), y[cal])
    final = train(np.arange(len(y)))
    weight, bias = _full_weights(final, len(classes))
    return Head(name, list(classes), weight, bias, temperature)


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
    """The category and sentiment heads plus the encoder they were trained on."""

    category: Head
    sentiment: Head
    encoder: str
    backend: str

    def save(self, path: Path) -> None:
        header = json.dumps({"encoder": self.encoder, "backend": self.backend})
        path.write_text(
            "\n".join([header, self.category.to_json(), self.sentiment.to_json()]) + "\n",
            "utf-8",
        )

    @classmethod
    def load(cls, path: Path) -> Heads:
        lines = [ln for ln in path.read_text("utf-8").splitlines() if ln.strip()]
        header = json.loads(lines[0])
        heads = {h.name: h for h in (Head.from_json(ln) for ln in lines[1:])}
        return cls(heads["category"], heads["sentiment"], header["encoder"], header["backend"])
