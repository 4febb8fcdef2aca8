"""Spike and exception detection: pure, over plain mention rows.

Every mention counts towards a few *keys*: ``brand:<name>`` (a brand query
word appears in it), ``category:<category>``, ``term:<term>`` (a configured
watch term appears) and ``exception:<#hashtag>``.

For each key the *current* count is the number of mentions that arrived in
the last ``window`` (5 minutes by default). The *baseline* is the series of
counts of the windows of the same length over the preceding
``baseline_hours``; its mean ``mu`` and standard deviation ``sd``. A key is
*hot* when ``current >= max(min_count, factor * mu, mu + z * sd)``; exception
keys are hot at ``exception_min_count`` whatever the baseline. Until the
baseline period holds ``min_history`` mentions in all (a new installation, a
quiet test), there is no baseline to compare with and only exceptions alert.

One storm is one alert: a hot key alerts only when it was not hot during the
last ``cooldown`` (its ``last_hot_at`` is older, or unknown); every hot check
moves ``last_hot_at`` forward, so a storm that lasts hours alerts once, and a
new storm after a quiet ``cooldown`` alerts again. Run the check every minute
and a spike alerts within the window of its start.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.stats import MentionRow, hashtag_hits


@dataclass(frozen=True, slots=True)
class SpikeRules:
    window: timedelta = timedelta(minutes=5)
    baseline: timedelta = timedelta(hours=24)
    min_count: int = 5
    factor: float = 3.0
    z: float = 3.0
    cooldown: timedelta = timedelta(minutes=60)
    exception_min_count: int = 1
    min_history: int = 50


@dataclass(frozen=True, slots=True)
class Watch:
    """What to key mentions by: brand name -> query words, terms, exception hashtags."""

    brands: Mapping[str, Sequence[str]]
    terms: Sequence[str] = ()
    exception_hashtags: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Spike:
    key: str
    count: int
    baseline_mean: float
    threshold: float
    mention_ids: tuple[int, ...]

    @property
    def kind(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def subject(self) -> str:
        return self.key.split(":", 1)[1]


def _contains(text: str, word: str) -> bool:
    return re.search(r"(?<![\w#@])" + re.escape(word.lower()) + r"(?![\w-])", text) is not None


def keys_for(mention: MentionRow, watch: Watch) -> set[str]:
    text = mention.text.lower()
    keys = set()
    if mention.category:
        keys.add(f"category:{mention.category}")
    for brand, queries in watch.brands.items():
        if any(_contains(text, q.lstrip("#@")) or q.lower() in text for q in queries):
            keys.add(f"brand:{brand}")
    for term in watch.terms:
        if _contains(text, term):
            keys.add(f"term:{term}")
    for tag in hashtag_hits(mention.text, watch.exception_hashtags):
        keys.add(f"exception:{tag}")
    return keys


def threshold_for(series: Sequence[int], rules: SpikeRules) -> tuple[float, float]:
    """(mean, threshold) of a baseline series of window counts."""
    if not series:
        return 0.0, float(rules.min_count)
    mean = sum(series) / len(series)
    sd = math.sqrt(sum((c - mean) ** 2 for c in series) / len(series))
    return mean, max(float(rules.min_count), rules.factor * mean, mean + rules.z * sd)


def detect(mentions: Iterable[MentionRow], *, now: datetime, watch: Watch,
           rules: SpikeRules) -> list[Spike]:
    """Keys hot at ``now`` (before cooldown), largest first.

    ``mentions`` should cover ``[now - window - baseline, now)``; others are ignored.
    """
    current_start = now - rules.window
    baseline_start = current_start - rules.baseline
    windows = max(1, int(rules.baseline / rules.window))
    series: dict[str, list[int]] = {}
    current: dict[str, list[int]] = {}
    history = 0
    for m in mentions:
        if not baseline_start <= m.ingested_at < now:
            continue
        history += m.ingested_at < current_start
        for key in keys_for(m, watch):
            if m.ingested_at >= current_start:
                current.setdefault(key, []).append(m.id)
            else:
                slot = int((m.ingested_at - baseline_start) / rules.window)
                series.setdefault(key, [0] * windows)[min(slot, windows - 1)] += 1
    spikes = []
    for key, ids in current.items():
        if key.startswith("exception:"):
            mean = sum(series.get(key, [0])) / windows
            threshold = float(rules.exception_min_count)
        elif history < rules.min_history:
            continue
        else:
            mean, threshold = threshold_for(series.get(key, [0] * windows), rules)
        if len(ids) >= threshold:
            spikes.append(Spike(key, len(ids), mean, threshold, tuple(sorted(ids))))
    spikes.sort(key=lambda s: (-s.count, s.key))
    return spikes


def to_alert(spikes: Sequence[Spike], last_hot: Mapping[str, datetime], *, now: datetime,
             rules: SpikeRules) -> list[Spike]:
    """The spikes that start a new storm.

    A spike is part of an ongoing storm when its key was hot within the
    cooldown, or when at least half of its mentions belong to a spike that is
    (the same storm seen through another key: brand, category and term of one
    wave of complaints). The caller sends all returned spikes as one alert.
    """
    ongoing = [s for s in spikes
               if (seen := last_hot.get(s.key)) is not None and now - seen <= rules.cooldown]
    fresh = []
    for spike in spikes:
        if spike in ongoing:
            continue
        ids = set(spike.mention_ids)
        if any(len(ids & set(o.mention_ids)) * 2 >= len(ids) for o in ongoing):
            continue
        fresh.append(spike)
    return fresh
