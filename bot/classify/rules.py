"""Keyword "sample terms" rules — the command post's original automation.

Each category has phrases per language. A text matches a phrase when the phrase
occurs on word boundaries (case- and accent-insensitive). The category with the
strongest evidence wins; confidence grows with the number and length of distinct
matched phrases and shrinks when other categories match too, so a single weak hit
stays below the routing threshold and goes to triage.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.domain import Category, Prediction


def normalise(text: str) -> str:
    """Lower-case, strip accents and fold apostrophes so rules match loosely."""
    text = text.replace("\u2019", "'").replace("`", "'").casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True, slots=True)
class RuleHit:
    category: Category
    lang: str
    term: str


class RulesClassifier:
    """Classify by the config's sample terms.

    Args:
        terms: ``{category: {lang: [phrase, ...]}}``.
        base_confidence: confidence of one unopposed single-word hit.
    """

    def __init__(
        self,
        terms: Mapping[Category, Mapping[str, Sequence[str]]],
        *,
        base_confidence: float = 0.55,
    ) -> None:
        self.base_confidence = base_confidence
        # (hit, phrase as normalised, pattern): the plain substring test is a cheap
        # necessary condition, so the regex (word boundaries) runs only on candidates.
        self._patterns: list[tuple[RuleHit, str, re.Pattern[str]]] = []
        for category, by_lang in terms.items():
            for lang, phrases in by_lang.items():
                for phrase in phrases:
                    norm = normalise(phrase).strip()
                    if not norm:
                        continue
                    pattern = re.compile(r"(?<!\w)" + re.escape(norm) + r"(?!\w)")
                    hit = RuleHit(Category(category), lang, phrase)
                    self._patterns.append((hit, norm, pattern))

    def hits(self, text: str) -> list[RuleHit]:
        norm = normalise(text)
        return [hit for hit, needle, pattern in self._patterns
                if needle in norm and pattern.search(norm)]

    def score(self, text: str) -> dict[Category, float]:
        """Evidence per category: one point per word of each distinct matched phrase."""
        evidence: dict[Category, float] = {}
        for hit in self.hits(text):
            words = len(hit.term.split())
            evidence[hit.category] = evidence.get(hit.category, 0.0) + 1.0 + 0.5 * (words - 1)
        return evidence

    def predict_one(self, text: str) -> Prediction:
        evidence = self.score(text)
        if not evidence:
            return Prediction(Category.NOISE, 0.0, "rules")
        ranked = sorted(evidence.items(), key=lambda kv: kv[1], reverse=True)
        best, strength = ranked[0]
        rest = sum(value for _, value in ranked[1:])
        # Saturating in the winner's strength, discounted by competing evidence.
        raw = 1.0 - (1.0 - self.base_confidence) * math.exp(-(strength - 1.0) * 0.8)
        confidence = raw * strength / (strength + rest)
        return Prediction(best, round(min(confidence, 0.99), 4), "rules")

    def predict(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        return [self.predict_one(text) for text in texts]
