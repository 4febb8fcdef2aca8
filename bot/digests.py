"""Digest view-models: the daily newsletter and the weekly leadership digest.

Pure functions from plain rows (``bot.stats``) to plain view-models; rendering
to Block Kit lives in ``handlers/digest_blocks.py``.

Daily newsletter (per department and global): yesterday against the day
before, by category; the top themes of yesterday's actionable mentions
(``bot.themes``); notable mentions — the highest priority ones (priority,
then author reach) and the best conversions (positive conversion score);
emerging terms against the seven days before.

Weekly leadership digest, "one interesting thing we learned from customers":
the top *starred* insight of the week in the customer's own words, then
runners-up. Starred mentions always come first. Among starred mentions, and
for the fallback when nothing was starred, candidates (every actionable
category, at least 20 characters of text) are ranked by

    score = 2.0 * novelty + 1.5 * demand + 1.0 * surprise

- *novelty*: the share of the mention's content words never seen in the four
  weeks before (a new theme);
- *demand* (feature requests only): the size of its theme among the week's
  feature requests divided by the largest such theme (frequently requested);
- *surprise* (raves only): the share of its content words that also occur in
  the week's complaints and cases (praise for what others complain about).

Ties go to the larger author reach, then the older mention.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from bot.stats import (
    NOT_ACTIONABLE,
    EngagementRow,
    MentionRow,
    conversion_score,
)
from bot.themes import Embedder, EmergingTerm, emerging_terms, find_themes, tokens

CATEGORY_ORDER = ("fraud", "case", "rant", "lead", "query", "rfe", "rave", "noise")


@dataclass(frozen=True, slots=True)
class MentionRef:
    """A mention as a digest quotes it."""

    id: int
    author: str
    text: str
    url: str | None
    category: str | None
    source: str
    channel: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ThemeView:
    label: tuple[str, ...]
    count: int
    example: MentionRef


@dataclass(frozen=True, slots=True)
class CategoryDelta:
    category: str
    count: int
    previous: int

    @property
    def delta(self) -> int:
        return self.count - self.previous


@dataclass
class DailyDigest:
    scope: str
    department: str | None
    day: date
    total: int
    previous_total: int
    categories: list[CategoryDelta] = field(default_factory=list)
    themes: list[ThemeView] = field(default_factory=list)
    notable: list[MentionRef] = field(default_factory=list)
    emerging: list[EmergingTerm] = field(default_factory=list)


def ref(m: MentionRow, reason: str = "") -> MentionRef:
    return MentionRef(m.id, m.author, m.text, m.url, m.category, m.source, m.channel, reason)


def _actionable(rows: Sequence[MentionRow]) -> list[MentionRow]:
    return [m for m in rows if m.category and m.category not in NOT_ACTIONABLE]


def build_daily(
    *,
    scope: str,
    department: str | None,
    day: date,
    mentions: Sequence[MentionRow],
    previous: Sequence[MentionRow],
    baseline: Sequence[MentionRow],
    engagements: Mapping[int, EngagementRow],
    top_themes: int = 5,
    notable: int = 5,
    embed: Embedder | None = None,
    ignore: Sequence[str] = (),
) -> DailyDigest:
    """The daily newsletter for ``day`` (``mentions``) against ``previous`` (the
    day before); ``baseline`` is the seven days before ``day``, for emerging terms."""
    now_counts = Counter(m.category or "-" for m in mentions)
    before_counts = Counter(m.category or "-" for m in previous)
    names = sorted(set(now_counts) | set(before_counts),
                   key=lambda c: (CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else 99, c))
    digest = DailyDigest(scope=scope, department=department, day=day, total=len(mentions),
                         previous_total=len(previous),
                         categories=[CategoryDelta(c, now_counts[c], before_counts[c])
                                     for c in names])
    actionable = sorted(_actionable(mentions), key=lambda m: m.id)
    for theme in find_themes([m.text for m in actionable], embed=embed, ignore=ignore)[
            :top_themes]:
        members = [actionable[i] for i in theme.members]
        example = max(members, key=lambda m: (m.priority or 0, m.author_reach or 0, -m.id))
        digest.themes.append(ThemeView(theme.label, theme.size, ref(example)))

    by_priority = sorted(actionable, key=lambda m: (-(m.priority or 0), -(m.author_reach or 0),
                                                    m.id))
    chosen: list[MentionRef] = [ref(m, "top priority") for m in by_priority[:notable]]
    scored = [(conversion_score(engagements[m.id]) or 0.0, m) for m in mentions
              if m.id in engagements]
    best = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1].id))
    seen = {r.id for r in chosen}
    for score, m in best[:3]:
        if m.id not in seen:
            chosen.append(ref(m, f"conversion {score:+.0f}"))
            seen.add(m.id)
    digest.notable = chosen
    digest.emerging = emerging_terms([m.text for m in actionable],
                                     [m.text for m in _actionable(baseline)],
                                     baseline_periods=7, ignore=ignore)
    return digest


@dataclass(frozen=True, slots=True)
class Insight:
    mention: MentionRef
    score: float
    starred: bool
    novelty: float
    demand: float
    surprise: float


@dataclass
class WeeklyDigest:
    first_day: date
    last_day: date
    total: int
    starred_count: int
    top: Insight | None
    runners_up: list[Insight] = field(default_factory=list)


def rank_insights(week: Sequence[MentionRow], history: Sequence[MentionRow],
                  engagements: Mapping[int, EngagementRow], *,
                  ignore: Sequence[str] = ()) -> list[Insight]:
    """Every candidate of the week, best first (see the module docstring)."""
    skip = frozenset(w.lower().lstrip("#@") for w in ignore)
    seen_before = {t for m in history for t in tokens(m.text, ignore=skip)}
    complaints = {t for m in week if m.category in ("rant", "case")
                  for t in tokens(m.text, ignore=skip)}
    candidates = [m for m in sorted(_actionable(week), key=lambda m: m.id)
                  if len(m.text.strip()) >= 20]
    requests = [m for m in candidates if m.category == "rfe"]
    demand: dict[int, float] = {}
    themes = find_themes([m.text for m in requests], ignore=ignore, min_size=1)
    largest = max((t.size for t in themes), default=1)
    for theme in themes:
        for i in theme.members:
            demand[requests[i].id] = theme.size / largest if theme.size > 1 else 0.0
    insights = []
    for m in candidates:
        words = set(tokens(m.text, ignore=skip))
        novelty = len(words - seen_before) / len(words) if words else 0.0
        surprise = (len(words & complaints) / len(words)
                    if m.category == "rave" and words else 0.0)
        want = demand.get(m.id, 0.0)
        engagement = engagements.get(m.id)
        starred = bool(engagement and engagement.starred)
        score = round(2.0 * novelty + 1.5 * want + 1.0 * surprise, 6)
        insights.append(Insight(ref(m, _reason(starred, novelty, want, surprise)), score,
                                starred, novelty, want, surprise))
    reach = {m.id: m.author_reach or 0 for m in candidates}
    insights.sort(key=lambda i: (not i.starred, -i.score, -reach[i.mention.id], i.mention.id))
    return insights


def _reason(starred: bool, novelty: float, demand: float, surprise: float) -> str:
    if starred:
        return "starred by the team"
    parts = {"a new theme": 2.0 * novelty, "often requested": 1.5 * demand,
             "a surprising rave": surprise}
    best = max(parts, key=lambda k: parts[k])
    return best if parts[best] > 0 else "ranked by reach"


def build_weekly(*, first_day: date, last_day: date, week: Sequence[MentionRow],
                 history: Sequence[MentionRow], engagements: Mapping[int, EngagementRow],
                 runners_up: int = 3, ignore: Sequence[str] = ()) -> WeeklyDigest:
    """The weekly "one interesting thing we learned from customers"."""
    ranked = rank_insights(week, history, engagements, ignore=ignore)
    return WeeklyDigest(first_day=first_day, last_day=last_day, total=len(week),
                        starred_count=sum(i.starred for i in ranked),
                        top=ranked[0] if ranked else None,
                        runners_up=ranked[1:1 + runners_up])
