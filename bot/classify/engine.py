"""The combined classification engine: rules + encoder heads + language detection.

Precedence (per text):

1. The rules (the config's sample terms) are scored as in
   :class:`~bot.classify.rules.RulesClassifier`.
2. The encoder runs once per batch; the category and sentiment heads read the
   same embedding (and, for the shipped heads, the same hashed character
   n-grams, see :mod:`bot.classify.lexical`).
3. A *strong* rules hit (rules confidence >= ``rules_strong``, i.e. at least two
   words of unopposed evidence) decides the category on its own — the sample
   terms are the business's explicit instruction — unless the model is at least
   ``model_overrides`` confident in another category (the routing threshold by
   default: an answer the model would automate by itself; ``rules_always_win``
   in the config turns this off). On real tweets the strong hits that a
   confident model contradicted were right 27 % of the time (see
   docs/MODEL_CARD.md). When the model agrees, the method is ``"rules+model"``
   and the confidence is the combined one below.
4. Otherwise the model decides. When its category equals the rules' top
   category (a weak hit), method ``"rules+model"`` and the confidence rises:
   ``1 - (1 - p_model) * (1 - r / 2)`` — the rules' evidence counts half, because
   rules and model often see the same words. Otherwise ``"model"`` with the
   model's temperature-calibrated probability.

Routing (:func:`route_for`): below ``classification.threshold`` a mention goes
to ``triage``; else noise goes to ``noise`` and every other category to its
department.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bot.classify.encoder import Encoder
from bot.classify.heads import Heads
from bot.classify.lang import detect_langs
from bot.classify.lexical import SparseRows
from bot.classify.prepare import DEFAULT_MODEL, cache_dir, default_adapter, encoder_identity
from bot.classify.rules import RulesClassifier
from bot.config import CareConfig
from bot.domain import Category, Prediction, Sentiment
from bot.errors import ConfigError

TRIAGE = "triage"
NOISE_ROUTE = "noise"
DEFAULT_RULES_STRONG = 0.79

_encoders: dict[tuple[str, str], Encoder] = {}
_encoders_lock = threading.Lock()


def get_encoder(model: str = DEFAULT_MODEL, backend: str = "auto") -> Encoder:
    """The process-wide encoder for ``model`` (loaded once, thread-safe).

    Raises:
        ConfigError: the model cannot be loaded (no such directory or model id, not a
            model, offline without it in the cache, an unknown backend).
    """
    key = (model, backend)
    with _encoders_lock:
        if key not in _encoders:
            try:
                _encoders[key] = Encoder(model, backend=backend)
            except (OSError, ValueError) as exc:
                lines = str(exc).strip().splitlines()
                reason = lines[0] if lines else type(exc).__name__
                raise ConfigError(
                    f"cannot load the encoder {model!r} (CAREBOT_MODEL or --model, "
                    f"backend {backend}): {reason}"
                ) from exc
        return _encoders[key]


def shipped_heads_path() -> Path:
    return Path(str(resources.files("bot.data").joinpath("heads.jsonl")))


def heads_path_for(model: str) -> Path:
    """Where the heads for ``model`` live: shipped for the default, cache otherwise."""
    if model == DEFAULT_MODEL:
        return shipped_heads_path()
    slug = "".join(ch if ch.isalnum() else "_" for ch in model.strip("/"))[-80:]
    return cache_dir() / f"heads-{slug}.jsonl"


def load_heads(model: str, path: Path | None = None) -> Heads:
    path = path or heads_path_for(model)
    if not path.exists():
        raise ConfigError(
            f"no trained heads for CAREBOT_MODEL={model!r} at {path}; run `carebot train`"
        )
    try:
        heads = Heads.load(path)
    except ValueError as exc:
        raise ConfigError(f"{exc}; run `carebot train`") from exc
    expected = encoder_identity(model, default_adapter(model))
    if heads.encoder != expected:
        raise ConfigError(
            f"heads at {path} were trained on encoder {heads.encoder!r}, not {expected!r}; "
            "run `carebot train`"
        )
    return heads


def route_for(prediction: Prediction, config: CareConfig) -> str:
    """Department name, ``"noise"``, or ``"triage"`` below the routing threshold."""
    if prediction.confidence < config.classification.threshold:
        return TRIAGE
    department = config.routing.get(prediction.category)
    if prediction.category is Category.NOISE or department is None:
        return NOISE_ROUTE
    return department


#: From this many texts a ``predict`` call does its text-side work (rules, n-grams,
#: language) in a second thread while the encoder runs. 1,000 tweets on OpenVINO
#: (2 vCPUs): 7 % less time; on ONNX Runtime, which keeps both cores busy, the same.
OVERLAP_FROM = 64


@dataclass(frozen=True)
class _TextSide:
    lexical: SparseRows | None
    rules: list[Prediction]
    langs: list[str | None]


class EngineClassifier:
    """Rules + model classifier implementing the ``Classifier`` protocol.

    Args:
        rules: the sample-terms rules.
        heads: trained heads, or a callable returning them (loaded on first use).
        encoder: an encoder, or a callable returning one (loaded on first use).
        rules_strong: rules confidence from which rules decide alone.
        model_overrides: model confidence from which the model's category beats a
            strong rules hit (``None``: strong rules hits always win).
        detect_language: run language detection (else ``lang`` is the hint or ``None``).
    """

    def __init__(
        self,
        rules: RulesClassifier,
        heads: Heads | Callable[[], Heads],
        encoder: Encoder | Callable[[], Encoder],
        *,
        rules_strong: float = DEFAULT_RULES_STRONG,
        model_overrides: float | None = None,
        detect_language: bool = True,
    ) -> None:
        self.rules = rules
        self._heads = heads
        self._encoder = encoder
        self.rules_strong = rules_strong
        self.model_overrides = model_overrides
        self.detect_language = detect_language
        self._lock = threading.Lock()

    @property
    def heads(self) -> Heads:
        with self._lock:
            if callable(self._heads):
                self._heads = self._heads()
            return self._heads

    @property
    def encoder(self) -> Encoder:
        with self._lock:
            if callable(self._encoder):
                self._encoder = self._encoder()
            return self._encoder

    def predict(
        self,
        texts: Sequence[str],
        langs: Sequence[str | None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Prediction]:
        if not texts:
            return []
        heads, encoder = self.heads, self.encoder
        if len(texts) < OVERLAP_FROM:
            embeddings = encoder.encode(texts, progress=progress)
            return self._predict(embeddings, self._text_side(texts, langs, heads), heads)
        # The text-side work (rules, n-grams, language) runs while the encoder computes:
        # OpenVINO's streams leave this thread waiting for most of each batch.
        with ThreadPoolExecutor(1, thread_name_prefix="carebot-text") as pool:
            side = pool.submit(self._text_side, texts, langs, heads)
            embeddings = encoder.encode(texts, progress=progress)
            return self._predict(embeddings, side.result(), heads)

    def predict_embedded(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        langs: Sequence[str | None] | None = None,
        heads: Heads | None = None,
    ) -> list[Prediction]:
        """Combine rules and heads for texts whose embeddings are already known."""
        heads = heads or self.heads
        return self._predict(embeddings, self._text_side(texts, langs, heads), heads)

    def _text_side(
        self, texts: Sequence[str], langs: Sequence[str | None] | None, heads: Heads
    ) -> _TextSide:
        """Everything that reads the texts but not their embeddings."""
        detected: list[str | None] = (
            list(detect_langs(texts, langs))
            if self.detect_language
            else [(langs[i] if langs is not None else None) for i in range(len(texts))]
        )
        rules = [self.rules.predict_one(text) for text in texts]
        return _TextSide(heads.features(texts), rules, detected)

    def _predict(self, embeddings: np.ndarray, side: _TextSide, heads: Heads) -> list[Prediction]:
        cat_p = heads.category.proba(embeddings, side.lexical)
        sent_p = heads.sentiment.proba(embeddings, side.lexical)
        s_index = {label: i for i, label in enumerate(heads.sentiment.classes)}
        out = []
        for i in range(len(side.rules)):
            category, confidence, method = self.combine(
                side.rules[i], cat_p[i], heads.category.classes
            )
            sp = sent_p[i]
            score = float(sp[s_index["positive"]] - sp[s_index["negative"]])
            sentiment = Sentiment(heads.sentiment.classes[int(sp.argmax())])
            out.append(
                Prediction(
                    category=category,
                    confidence=round(confidence, 4),
                    method=method,
                    sentiment=sentiment,
                    sentiment_score=round(score, 4),
                    lang=side.langs[i],
                )
            )
        return out

    def combine(
        self, rule: Prediction, proba: np.ndarray, classes: Sequence[str]
    ) -> tuple[Category, float, str]:
        """Apply the documented precedence to one text's rules and model outputs."""
        best = int(proba.argmax())
        model_cat, model_p = Category(classes[best]), float(proba[best])
        has_rule = rule.confidence > 0.0
        overruled = self.model_overrides is not None and model_p >= self.model_overrides
        if has_rule and rule.confidence >= self.rules_strong:
            if model_cat is rule.category:
                return rule.category, _agree(model_p, rule.confidence), "rules+model"
            if not overruled:
                return rule.category, rule.confidence, "rules"
        if has_rule and model_cat is rule.category:
            return model_cat, _agree(model_p, rule.confidence), "rules+model"
        return model_cat, model_p, "model"


def _agree(model_p: float, rule_conf: float) -> float:
    return min(0.99, 1.0 - (1.0 - model_p) * (1.0 - rule_conf / 2.0))


def build_classifier(
    care_config: CareConfig, settings_model: str = DEFAULT_MODEL, *, backend: str = "auto"
) -> EngineClassifier:
    """The default engine for a process: rules from ``care_config``, model loaded lazily.

    Nothing heavy happens here; the encoder and heads load on the first
    ``predict`` call (once per process, shared by every engine).
    """
    rules = RulesClassifier(care_config.sample_terms)
    return EngineClassifier(
        rules,
        heads=lambda: load_heads(settings_model),
        encoder=lambda: get_encoder(settings_model, backend),
        model_overrides=model_overrides(care_config),
    )


def model_overrides(care_config: CareConfig) -> float | None:
    """The model confidence that beats a strong rules hit, from the config."""
    settings = care_config.classification
    return None if settings.rules_always_win else settings.threshold
