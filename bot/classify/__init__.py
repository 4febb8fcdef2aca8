"""Classification: the ``Classifier`` protocol and its engines (rules, model, combined)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from bot.domain import Prediction


@runtime_checkable
class Classifier(Protocol):
    """Anything that sorts mention texts into categories.

    ``langs`` carries a language already known from the source (or ``None`` per
    text); engines that detect language themselves may ignore it.
    """

    def predict(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list[Prediction]: ...


__all__ = ["Classifier"]
