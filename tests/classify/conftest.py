"""Fixtures for the classification tests: a fake encoder and the real default engine."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bot.classify.engine import EngineClassifier, build_classifier, get_encoder  # noqa: E402
from bot.classify.heads import Head, Heads  # noqa: E402
from bot.classify.rules import RulesClassifier  # noqa: E402
from bot.config import CareConfig, load_care_config  # noqa: E402
from bot.domain import Category, Sentiment  # noqa: E402

CATEGORIES = [c.value for c in Category]
SENTIMENTS = [s.value for s in Sentiment]


class FakeEncoder:
    """Maps each text to a one-hot vector chosen by a keyword table; counts encode calls."""

    name = "fake"
    backend = "fake"

    def __init__(self, keywords: dict[str, int], dim: int = 8) -> None:
        self.keywords = keywords
        self.dim = dim
        self.calls = 0

    def encode(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word, column in self.keywords.items():
                if word in text.lower():
                    out[i, column] = 1.0
        return out


def one_hot_heads(strength: float = 3.0, dim: int = 8) -> Heads:
    """Category k wins when embedding column k is set (column 7 = noise when nothing is)."""
    weight = np.eye(len(CATEGORIES), dim, dtype=np.float32) * strength
    bias = np.zeros(len(CATEGORIES), dtype=np.float32)
    bias[CATEGORIES.index("noise")] = 0.5
    category = Head("category", CATEGORIES, weight, bias)
    sentiment = Head(
        "sentiment",
        SENTIMENTS,
        np.zeros((3, dim), dtype=np.float32),
        np.asarray([0.0, 1.0, 0.0], dtype=np.float32),
    )
    return Heads(category, sentiment, "fake", "fake")


@pytest.fixture(scope="session")
def care_config() -> CareConfig:
    return load_care_config(None)


@pytest.fixture
def fake_engine(care_config: CareConfig) -> tuple[EngineClassifier, FakeEncoder]:
    encoder = FakeEncoder(
        {
            w: CATEGORIES.index(c)
            for w, c in [("boot", "case"), ("invoice", "query"), ("awesome", "rave")]
        }
    )
    engine = EngineClassifier(
        RulesClassifier(care_config.sample_terms), one_hot_heads(), encoder, detect_language=False
    )  # type: ignore[arg-type]
    return engine, encoder


@pytest.fixture(scope="session")
def real_engine(care_config: CareConfig) -> EngineClassifier:
    """The shipped engine on the default model (prepared into the cache on first use)."""
    return build_classifier(care_config, "default")


@pytest.fixture(scope="session")
def default_encoder():  # type: ignore[no-untyped-def]
    """The default model on int8 ONNX Runtime ("auto" picks OpenVINO on CPUs with AMX)."""
    return get_encoder("default", "onnx")
