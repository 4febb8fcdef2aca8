"""The priority score: whom carebot pays attention to first. Pure; no I/O.

The score is a weighted mean of six factors, each in [0, 1], scaled to 0-100::

    score = 100 * sum(weight[f] * factor[f]) / sum(weight)

=============  ==============================================================
factor         how it is measured
=============  ==============================================================
``tier``       customer value tier (``priority.tiers``: platinum 1 ... bronze .25)
``watch``      the highest factor of the watch lists the author is on
               (``watch.lists``: mvp 1, big_customer 1, influencer .8, custom .6)
``reach``      followers on a log scale, 1.0 at ``priority.reach_full`` (100k)
``reputation`` the source's reputation signal in [0, 1] when it gives one
``category``   ``priority.categories`` (fraud 1, case .9, rant .7 ... noise 0)
``sentiment``  negative 1, neutral .3, positive 0
=============  ==============================================================

The default weights (tier 30, watch 25, reach 15, reputation 10, category 12,
sentiment 8) make *who* the author is count for 80 of 100 points and *how loud*
the text is for 20: an angry stranger does not outrank a calm key customer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.config import AttentionConfig
from bot.domain import Category

SENTIMENT_FACTOR = {"negative": 1.0, "neutral": 0.3, "positive": 0.0}


@dataclass(frozen=True, slots=True)
class PriorityInput:
    """What is known about a mention and its author when it is routed."""

    category: str | None
    sentiment: str | None = None
    tier: str | None = None
    reach: int | None = None
    reputation: float | None = None
    watch_lists: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Priority:
    """A score and the factors it came from (stored, so a score can be explained)."""

    score: int
    factors: dict[str, float] = field(default_factory=dict)

    @property
    def outbox_priority(self) -> int:
        """0-9 for the Slack outbox (card updates use 10 and go first)."""
        return min(9, self.score // 10)


def reach_factor(reach: int | None, full: int) -> float:
    if not reach or reach <= 0:
        return 0.0
    return min(1.0, math.log10(1 + reach) / math.log10(1 + full))


def watch_factor(lists: Iterable[str], config: AttentionConfig) -> float:
    known = config.watch.lists
    return max((known.get(name, config.watch.custom_factor) for name in lists), default=0.0)


def score(item: PriorityInput, config: AttentionConfig) -> Priority:
    """The 0-100 priority of a mention (see the module docstring for the formula)."""
    pcfg = config.priority
    reputation = item.reputation if item.reputation is not None else 0.0
    factors = {
        "tier": pcfg.tiers.get(item.tier or "", 0.0),
        "watch": watch_factor(item.watch_lists, config),
        "reach": reach_factor(item.reach, pcfg.reach_full),
        "reputation": min(1.0, max(0.0, reputation)),
        "category": _category_factor(item.category, pcfg.categories),
        "sentiment": SENTIMENT_FACTOR.get(item.sentiment or "", 0.0),
    }
    weights = pcfg.weights.model_dump()
    total = sum(weights.values())
    if total <= 0:
        return Priority(0, factors)
    value = 100.0 * sum(weights[name] * factors[name] for name in factors) / total
    return Priority(max(0, min(100, round(value))), {k: round(v, 3) for k, v in factors.items()})


def _category_factor(category: str | None, table: Mapping[Category, float]) -> float:
    for key, value in table.items():
        if str(key) == category:
            return value
    return 0.0


def is_entitled(*, tier: str | None, watch_lists: Iterable[str],
                config: AttentionConfig) -> bool:
    """A watched author, or a customer whose tier buys escalation."""
    return bool(tuple(watch_lists)) or (tier is not None and tier in config.sla.entitled_tiers)
