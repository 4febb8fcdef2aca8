"""Sentiment conversions: the documented score, and averages others can use for stats.

The conversion score of one engagement is how far the customer's sentiment
moved, on the ordinal scale negative = 0, neutral = 1, positive = 2::

    score = rank(after) - rank(before)

    negative -> positive   +2      neutral  -> positive   +1
    negative -> neutral    +1      unchanged               0
    positive -> neutral    -1      positive -> negative   -2

So negative -> positive scores higher than negative -> neutral, and making
things worse counts against. Averages are plain means of the scores in a group.

Each conversion is credited to an *agent*: whoever first responded, else the
claimer, else the person who tagged it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from bot.domain import Sentiment
from bot.errors import InvalidInput
from storage import workflow as wf_store
from storage.db import session_scope

if TYPE_CHECKING:
    from bot.services.core import Services

RANK: dict[str, int] = {Sentiment.NEGATIVE: 0, Sentiment.NEUTRAL: 1, Sentiment.POSITIVE: 2}

GroupBy = Literal["agent", "department", "period"]
Period = Literal["day", "week", "month"]


def conversion_score(before: str, after: str) -> int:
    """The documented score of a ``before`` -> ``after`` sentiment change.

    Raises:
        InvalidInput: a value that is not negative, neutral or positive.
    """
    try:
        return RANK[after] - RANK[before]
    except KeyError:
        raise InvalidInput("Sentiment must be negative, neutral or positive.") from None


@dataclass(frozen=True, slots=True)
class ConversionStat:
    """Conversions of one group: ``key`` is an agent id, a department or a period start."""

    key: str
    count: int
    average: float
    total: int


def period_start(when: datetime, period: Period, tz: ZoneInfo) -> str:
    local = when.astimezone(tz)
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    return local.strftime("%Y-%m")


def conversion_stats(services: Services, *, by: GroupBy, since: datetime | None = None,
                     until: datetime | None = None, period: Period = "week"
                     ) -> list[ConversionStat]:
    """Average conversion score per agent, department or period.

    Args:
        services: the services facade (database, config, clock).
        by: ``agent``, ``department`` or ``period``.
        since: only conversions tagged at or after this time.
        until: only conversions tagged before this time.
        period: for ``by="period"``: ``day``, ``week`` (starting Monday) or
            ``month``, in the care config's timezone.

    Returns:
        One row per group, sorted by key; departments without one are ``"-"``.
    """
    tz = ZoneInfo(services.config.timezone)
    groups: dict[str, list[int]] = defaultdict(list)
    with session_scope(services.engine) as session:
        for row in wf_store.conversions(session=session, since=since, until=until):
            if by == "agent":
                key = row.agent
            elif by == "department":
                key = row.department or "-"
            else:
                key = period_start(row.tagged_at, period, tz)
            groups[key].append(row.score)
    return [ConversionStat(key=key, count=len(scores), total=sum(scores),
                           average=sum(scores) / len(scores))
            for key, scores in sorted(groups.items())]
