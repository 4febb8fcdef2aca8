"""Build the classifier a deployment asks for."""

from __future__ import annotations

from bot.classify import Classifier
from bot.classify.rules import RulesClassifier
from bot.config import CareConfig


def rules_classifier(config: CareConfig) -> RulesClassifier:
    return RulesClassifier(config.sample_terms)


def build_classifier(
    config: CareConfig, *, model: str = "default", backend: str = "auto"
) -> Classifier:
    """``model="rules"`` gives the keyword rules alone; anything else the full engine.

    The engine loads its encoder (on ``backend``) lazily on the first ``predict``,
    once per process.
    """
    if model == "rules":
        return rules_classifier(config)
    from bot.classify.engine import build_classifier as build_engine

    return build_engine(config, model, backend=backend)
