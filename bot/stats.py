"""Manager statistics: pure computations over plain rows (no Slack, no SQL).

Definitions (the numbers ``/care stats`` and the digests show):

- *Volume*: mentions whose arrival (``ingested_at``) falls in the period, by
  category, department, language and source (missing values count as ``"-"``).
- *Time to first response* (TTFR): minutes from a mention's arrival in carebot
  (not its publication) to its first response (``responded_at``), the part of
  the delay the team controls, over the actionable mentions answered (every
  category but ``noise``; unclassified mentions are not actionable). p50/p90 are
  nearest-rank percentiles (the smallest value with at least p% of values at or
  below it).
- *Within SLA*: met / (met + missed). A mention's target is the one its SLA clock
  ran on (``mention_attention.sla_minutes``: per category and customer tier),
  else its category's ``sla_minutes``. Met: answered within the target. Missed:
  answered later, or still unanswered (and unresolved) when the target passed —
  nine cases never answered and one answered in two minutes is 10 %, not 100 %.
  Unanswered mentions whose target has not passed yet are not judged.
- *Response rate*: responded mentions / actionable mentions.
- *Conversion score* of an engagement: the stored score when the workflow
  recorded one, else ``rank(after) - rank(before)`` with negative=0, neutral=1,
  positive=2 (negative→positive = 2, negative→neutral = 1, no change = 0, a
  worsening is negative). The period's score is the mean over tagged
  engagements; the trend is the difference to the previous period of the same
  length.
- *Automation rate*: among classified mentions, the share whose first
  classification was made without a human (method not ``"human"``, no actor)
  with a confidence at or above the routing threshold, i.e. routed straight to
  its department (or dropped as noise) rather than to triage. Its *precision*
  is the share of those never reclassified by a human to another category.
  For one department or category, an automatic decision counts where it sent
  the mention (a rant routed to comms and corrected to a case is an error of
  comms and rant, not of support and case); mentions a person moved there are
  classified there, not automated.
- *Per agent*: claims, responses, TTFR p50 and mean conversion score.
- *Exceptions*: mentions containing each configured hashtag (case-insensitive).
- *Heatmap*: arrivals by local weekday (Mon=0) and hour, for staffing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.errors import InvalidInput

SENTIMENT_RANK = {"negative": 0, "neutral": 1, "positive": 2}
NOT_ACTIONABLE = {"noise"}


@dataclass(frozen=True, slots=True)
class MentionRow:
    """The columns of a mention the stats read."""

    id: int
    ingested_at: datetime
    source: str = "-"
    author: str = ""
    text: str = ""
    url: str | None = None
    lang: str | None = None
    category: str | None = None
    department: str | None = None
    channel: str | None = None
    sentiment: str | None = None
    sentiment_score: float | None = None
    author_reach: int | None = None
    published_at: datetime | None = None
    priority: int | None = None
    #: The first-response target the mention's SLA clock ran on (customer tier included).
    sla_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class EngagementRow:
    """The engagement of one mention (fields the workflow has not recorded are ``None``)."""

    mention_id: int
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    responded_by: str | None = None
    responded_at: datetime | None = None
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None
    conversion_before: str | None = None
    conversion_after: str | None = None
    conversion_score: float | None = None
    starred: bool = False
    starred_by: str | None = None
    starred_at: datetime | None = None
    kb_candidate: bool = False


@dataclass(frozen=True, slots=True)
class ClassificationRow:
    mention_id: int
    category: str
    method: str
    created_at: datetime
    actor: str | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC interval ``[start, end)`` and how to call it."""

    start: datetime
    end: datetime
    label: str
    #: The local calendar days it spans, when it was asked for in days.
    days: tuple[date, date, ZoneInfo] | None = None

    def previous(self) -> Period:
        """The period just before, as long: as many local calendar days when it spans
        days (a 23- or 25-hour DST day is one day, not 24 hours), else as many hours."""
        if self.days is not None:
            first, last, tz = self.days
            count = (last - first).days + 1
            before = (first - timedelta(days=count), first - timedelta(days=1), tz)
            return Period(local_day(before[0], tz)[0], self.start, f"before {self.label}",
                          before)
        length = self.end - self.start
        return Period(self.start - length, self.start, f"before {self.label}")

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when < self.end


@dataclass(frozen=True, slots=True)
class StatsQuery:
    period: Period
    department: str | None = None
    category: str | None = None
    public: bool = False


def local_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC bounds of a local calendar day (23 or 25 hours across DST changes)."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def parse_period(arg: str, *, now: datetime, tz: ZoneInfo) -> Period:
    """``today``, ``yesterday``, ``Nd`` (the last N local days, today included)
    or ``YYYY-MM-DD..YYYY-MM-DD`` (both days included)."""
    today = now.astimezone(tz).date()
    arg = arg.strip().lower()
    if arg == "today":
        start, end = local_day(today, tz)
        return Period(start, end, f"today ({today.isoformat()})", (today, today, tz))
    if arg == "yesterday":
        day = today - timedelta(days=1)
        start, end = local_day(day, tz)
        return Period(start, end, f"yesterday ({day.isoformat()})", (day, day, tz))
    match = re.fullmatch(r"(\d{1,3})d", arg)
    if match:
        days = int(match.group(1))
        if not 1 <= days <= 366:
            raise InvalidInput("A range in days must be between 1d and 366d.")
        first = today - timedelta(days=days - 1)
        return Period(local_day(first, tz)[0], local_day(today, tz)[1],
                      f"last {days} days ({first.isoformat()}..{today.isoformat()})",
                      (first, today, tz))
    if ".." in arg:
        left, _, right = arg.partition("..")
        try:
            first, last = date.fromisoformat(left), date.fromisoformat(right)
        except ValueError:
            raise InvalidInput(f"`{arg}`: dates must look like 2026-11-01..2026-11-30.") from None
        if last < first:
            raise InvalidInput(f"`{arg}`: the range ends before it starts.")
        if (last - first).days > 366:
            raise InvalidInput(f"`{arg}`: a range can span at most 366 days.")
        return Period(local_day(first, tz)[0], local_day(last, tz)[1],
                      f"{first.isoformat()}..{last.isoformat()}", (first, last, tz))
    raise InvalidInput(f"`{arg}` is not a range: use today, yesterday, 7d, 30d or "
                       "YYYY-MM-DD..YYYY-MM-DD.")


def parse_stats_args(args: Sequence[str], *, now: datetime, tz: ZoneInfo,
                     departments: Iterable[str], categories: Iterable[str]) -> StatsQuery:
    """Parse ``[range] [department|category] [public]`` in any order."""
    departments, categories = set(departments), set(categories)
    period: Period | None = None
    department = category = None
    public = False
    for raw in args:
        word = raw.strip().lower()
        if not word:
            continue
        if word == "public":
            public = True
        elif word in departments:
            if department not in (None, word):
                raise InvalidInput(f"One department at a time: `{department}` or `{word}`.")
            department = word
        elif word in categories:
            if category not in (None, word):
                raise InvalidInput(f"One category at a time: `{category}` or `{word}`.")
            category = word
        elif period is None:
            try:
                period = parse_period(word, now=now, tz=tz)
            except InvalidInput:
                if ".." in word or re.fullmatch(r"\d+d", word):
                    raise  # meant as a range: say what is wrong with it
                known = ", ".join(sorted(departments | categories))
                raise InvalidInput(f"`{raw}` is neither a range (today, 7d, 30d, "
                                   f"YYYY-MM-DD..YYYY-MM-DD) nor one of: {known}.") from None
        else:
            raise InvalidInput(f"`{raw}`: only one range is allowed.")
    return StatsQuery(period or parse_period("today", now=now, tz=tz), department, category,
                      public)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def conversion_score(engagement: EngagementRow) -> float | None:
    """The engagement's conversion score (see the module docstring), or ``None``."""
    if engagement.conversion_score is not None:
        return float(engagement.conversion_score)
    before = SENTIMENT_RANK.get(engagement.conversion_before or "")
    after = SENTIMENT_RANK.get(engagement.conversion_after or "")
    if before is None or after is None:
        return None
    return float(after - before)


def response_minutes(mention: MentionRow, engagement: EngagementRow | None) -> float | None:
    if engagement is None or engagement.responded_at is None:
        return None
    return max(0.0, (engagement.responded_at - mention.ingested_at).total_seconds() / 60.0)


def hashtag_hits(text: str, hashtags: Iterable[str]) -> list[str]:
    """The configured hashtags ``text`` contains (whole tags, case-insensitive)."""
    lowered = text.lower()
    hits = []
    for tag in hashtags:
        if re.search(re.escape(tag.lower()) + r"(?![\w-])", lowered):
            hits.append(tag)
    return hits


@dataclass(frozen=True, slots=True)
class SlaFigures:
    category: str
    responses: int
    p50: float | None
    p90: float | None
    sla_minutes: int | None
    within_sla: float | None
    #: Unanswered (and unresolved) mentions whose target has passed: misses in ``within_sla``.
    overdue: int = 0


@dataclass(frozen=True, slots=True)
class AgentFigures:
    user: str
    claimed: int
    responded: int
    ttfr_p50: float | None
    conversion_avg: float | None


@dataclass
class StatsReport:
    """Every figure of ``/care stats`` for one period (see the module docstring)."""

    period: Period
    total: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    by_department: dict[str, int] = field(default_factory=dict)
    by_lang: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    actionable: int = 0
    responded: int = 0
    response_rate: float | None = None
    ttfr_p50: float | None = None
    ttfr_p90: float | None = None
    within_sla: float | None = None
    sla: list[SlaFigures] = field(default_factory=list)
    conversion_avg: float | None = None
    conversion_n: int = 0
    conversion_prev_avg: float | None = None
    conversion_trend: float | None = None
    classified: int = 0
    automated: int = 0
    automation_rate: float | None = None
    reclassified: int = 0
    automation_precision: float | None = None
    agents: list[AgentFigures] = field(default_factory=list)
    exceptions: dict[str, int] = field(default_factory=dict)
    heatmap: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])


def counts(values: Iterable[str | None]) -> dict[str, int]:
    """Counts by value, largest first, then by name (``None`` counts as ``"-"``)."""
    counter = Counter(v or "-" for v in values)
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def select_mentions(mentions: Iterable[MentionRow], period: Period, *,
                    department: str | None = None,
                    category: str | None = None) -> list[MentionRow]:
    return [m for m in mentions if m.ingested_at in period
            and (department is None or m.department == department)
            and (category is None or m.category == category)]


def compute_stats(
    query: StatsQuery,
    mentions: Sequence[MentionRow],
    engagements: Mapping[int, EngagementRow],
    classifications: Sequence[ClassificationRow],
    *,
    sla_minutes: Mapping[str, int],
    exception_hashtags: Sequence[str],
    tz: ZoneInfo,
    threshold: float = 0.0,
    routing: Mapping[str, str | None] | None = None,
    now: datetime | None = None,
) -> StatsReport:
    """Compute a ``StatsReport``; ``mentions`` may span more than the period
    (the previous period, for the conversion trend, is taken from them too).

    ``routing`` (category -> department) tells which department an automatic
    classification sent a mention to. ``now`` judges unanswered mentions against
    their SLA target (without it only answered ones are judged)."""
    period = query.period
    chosen = select_mentions(mentions, period, department=query.department,
                             category=query.category)
    report = StatsReport(period=period, total=len(chosen))
    report.by_category = counts(m.category for m in chosen)
    report.by_department = counts(m.department for m in chosen)
    report.by_lang = counts(m.lang for m in chosen)
    report.by_source = counts(m.source for m in chosen)

    actionable = [m for m in chosen if m.category and m.category not in NOT_ACTIONABLE]
    report.actionable = len(actionable)
    minutes_by_category: dict[str, list[float]] = {}
    all_minutes: list[float] = []
    met: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    for m in actionable:  # noise answered before a person set it aside does not count
        category = m.category or "-"
        limit = m.sla_minutes if m.sla_minutes is not None else sla_minutes.get(category)
        engagement = engagements.get(m.id)
        minutes = response_minutes(m, engagement)
        if minutes is None:
            waited = None if now is None else (now - m.ingested_at).total_seconds() / 60.0
            resolved = engagement is not None and engagement.resolved_at is not None
            if limit is not None and waited is not None and waited > limit and not resolved:
                judged[category] += 1
                overdue[category] += 1
            continue
        all_minutes.append(minutes)
        minutes_by_category.setdefault(category, []).append(minutes)
        if limit is not None:
            judged[category] += 1
            met[category] += minutes <= limit
    report.responded = len(all_minutes)
    report.response_rate = _ratio(report.responded, report.actionable)
    report.ttfr_p50 = percentile(all_minutes, 50)
    report.ttfr_p90 = percentile(all_minutes, 90)
    report.within_sla = _ratio(sum(met.values()), sum(judged.values()))
    for category in sorted(set(minutes_by_category) | set(overdue)):
        values = minutes_by_category.get(category, [])
        limit = sla_minutes.get(category)
        report.sla.append(SlaFigures(
            category, len(values), percentile(values, 50), percentile(values, 90), limit,
            _ratio(met[category], judged[category]), overdue[category]))

    scores = _scores(chosen, engagements)
    report.conversion_avg, report.conversion_n = _mean(scores), len(scores)
    before = select_mentions(mentions, period.previous(), department=query.department,
                             category=query.category)
    report.conversion_prev_avg = _mean(_scores(before, engagements))
    if report.conversion_avg is not None and report.conversion_prev_avg is not None:
        report.conversion_trend = report.conversion_avg - report.conversion_prev_avg

    # Without the routing, a department's automatic decisions cannot be told apart.
    scoped = (query.category is not None or query.department is not None) and (
        query.department is None or routing is not None)

    def sent_here(category: str) -> bool:
        """Whether an automatic classification as ``category`` put a mention in scope."""
        return ((query.category is None or category == query.category)
                and (query.department is None
                     or (routing or {}).get(category) == query.department))

    _automation(report, select_mentions(mentions, period) if scoped else chosen,
                {m.id for m in chosen}, classifications, threshold,
                sent_here if scoped else None)
    report.agents = _agents(chosen, engagements)
    report.exceptions = {tag: sum(1 for m in chosen if hashtag_hits(m.text, [tag]))
                         for tag in exception_hashtags}
    for m in chosen:
        local = m.ingested_at.astimezone(tz)
        report.heatmap[local.weekday()][local.hour] += 1
    return report


def _scores(mentions: Iterable[MentionRow], engagements: Mapping[int, EngagementRow]
            ) -> list[float]:
    scores = []
    for m in mentions:
        engagement = engagements.get(m.id)
        score = conversion_score(engagement) if engagement else None
        if score is not None:
            scores.append(score)
    return scores


def _automation(report: StatsReport, mentions: Sequence[MentionRow], chosen: set[int],
                classifications: Sequence[ClassificationRow], threshold: float,
                sent_here: Callable[[str], bool] | None) -> None:
    """Automation figures of the ``chosen`` mentions; with ``sent_here``, an automatic
    decision counts where it sent the mention, wherever the mention is now."""
    history: dict[int, list[ClassificationRow]] = {}
    for row in sorted(classifications, key=lambda c: (c.created_at, c.mention_id)):
        history.setdefault(row.mention_id, []).append(row)
    for m in mentions:
        rows = history.get(m.id)
        if not rows:
            continue
        first = rows[0]
        # Not automated: decided by a person, or sent to triage for one.
        automated = not is_human(first) and (first.confidence is None
                                             or first.confidence >= threshold)
        if sent_here is not None:
            automated = automated and sent_here(first.category)
        if not automated and m.id not in chosen:
            continue
        report.classified += 1
        if not automated:
            continue
        report.automated += 1
        if any(is_human(r) and r.category != first.category for r in rows[1:]):
            report.reclassified += 1
    report.automation_rate = _ratio(report.automated, report.classified)
    if report.automated:
        report.automation_precision = (report.automated - report.reclassified) / report.automated


def is_human(row: ClassificationRow) -> bool:
    """A classification made by a person (the workflow's reclassify, mark noise)."""
    return row.method == "human" or row.actor is not None


def _agents(chosen: Sequence[MentionRow], engagements: Mapping[int, EngagementRow]
            ) -> list[AgentFigures]:
    claimed: Counter[str] = Counter()
    responded: dict[str, list[float]] = {}
    scores: dict[str, list[float]] = {}
    for m in chosen:
        e = engagements.get(m.id)
        if e is None:
            continue
        if e.claimed_by:
            claimed[e.claimed_by] += 1
        agent = e.responded_by or e.claimed_by
        minutes = response_minutes(m, e)
        if agent and minutes is not None:
            responded.setdefault(agent, []).append(minutes)
        score = conversion_score(e)
        if agent and score is not None:
            scores.setdefault(agent, []).append(score)
    users = sorted(set(claimed) | set(responded) | set(scores),
                   key=lambda u: (-len(responded.get(u, [])), -claimed[u], u))
    return [AgentFigures(u, claimed[u], len(responded.get(u, [])),
                         percentile(responded.get(u, []), 50), _mean(scores.get(u, [])))
            for u in users]
