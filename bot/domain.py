"""Slack-free domain vocabulary shared by every layer.

Nothing here imports Slack, SQL or model code: these are the plain values that
flow from ingest through classification and routing to rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    """The actionable categories of the social media command post."""

    CASE = "case"  # a request for help -> support
    QUERY = "query"  # a how-to question -> docs writers
    RANT = "rant"  # public complaint -> comms
    RAVE = "rave"  # praise -> product marketing
    LEAD = "lead"  # buying interest -> sales
    RFE = "rfe"  # feature request -> product
    FRAUD = "fraud"  # unauthorised sales, fake keys, phishing -> legal
    NOISE = "noise"  # everything else


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


#: The ten languages carebot supports end to end (ISO 639-1).
LANGUAGES: tuple[str, ...] = ("en", "da", "nl", "fr", "de", "it", "pt", "es", "sv", "ru")


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a classifier says about one text.

    Attributes:
        category: the chosen category.
        confidence: calibrated probability of ``category`` in [0, 1].
        method: which engine decided: ``"rules"``, ``"model"`` or ``"rules+model"``.
        sentiment: sentiment label when the classifier scores it.
        sentiment_score: signed score in [-1, 1] (negative .. positive) when known.
        lang: detected ISO 639-1 language, ``"other"`` for a language outside
            :data:`LANGUAGES`, or ``None`` when not detected.
    """

    category: Category
    confidence: float
    method: str
    sentiment: Sentiment | None = None
    sentiment_score: float | None = None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class MentionIn:
    """A mention as it arrives from a listening source, before it is stored."""

    source: str
    external_id: str
    text: str
    author: str
    url: str | None = None
    author_reach: int | None = None
    lang: str | None = None
    published_at: datetime | None = None


def language_subtag(value: Any) -> str | None:
    """The primary subtag of a language tag, lower-cased (``en-US``, ``pt_BR`` -> ``en``,
    ``pt``); ``None`` for an empty or non-text value."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().split("-")[0].split("_")[0].lower()[:16] or None
