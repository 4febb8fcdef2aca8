"""Manager reports: stats, scheduled digests, spike alerts and exports.

Each public method is one unit of work over the database; the computations
are the pure functions of ``bot.stats``, ``bot.digests`` and ``bot.spikes``.
Rendering is injected (a ``Render`` turns a view-model into
``chat.postMessage`` payloads) so this module stays Slack-free.

Scheduled messages go through the durable outbox, in the same transaction as
a ``digest_log`` row keyed by (kind, period, target — the channel, plus the
department for a department's newsletter): a period's digest is
queued once even when its job runs again (a replica taking over a lease, a
restart at digest time), and delivery survives Slack outages.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.digests import DailyDigest, WeeklyDigest, build_daily, build_weekly
from bot.domain import Category
from bot.services.core import CATEGORY_PRIORITY, Services
from bot.spikes import Spike, SpikeRules, Watch, detect, to_alert
from bot.stats import (
    MentionRow,
    Period,
    StatsQuery,
    StatsReport,
    compute_stats,
    local_day,
    parse_period,
    parse_stats_args,
)
from bot.themes import Embedder
from storage import outbox
from storage import stats as store
from storage.db import session_scope

log = logging.getLogger(__name__)

Payload = dict[str, Any]
Render = Callable[[Any], list[Payload]]

#: Formula characters a spreadsheet would evaluate (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Queued:
    """What a send queued: (target channel, number of messages) per digest."""

    kind: str
    period: str
    targets: list[tuple[str, int]]
    skipped: list[str]


@dataclass(frozen=True, slots=True)
class SpikeAlert:
    """One alert: the spikes of one storm, with the mentions that make them."""

    at: datetime
    spikes: list[Spike]
    mentions: dict[int, MentionRow]


def digest_target(channel: str, department: str | None) -> str:
    """The once-per-period key of a daily newsletter: its channel, and its department
    when it has one, since several newsletters may share a channel (``digest_log.target``
    holds 64 characters; a longer key hashes the department name)."""
    if department is None:
        return channel
    key = f"{channel}:{department}"
    if len(key) <= 64:
        return key
    return f"{channel}:{hashlib.sha256(department.encode()).hexdigest()[:24]}"


class Reports:
    """Stats, digests, alerts and exports over one ``Services``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config
        self.stats_config = services.config.stats
        self.tz = ZoneInfo(services.config.timezone)

    # -- who may ask ---------------------------------------------------------

    def is_manager(self, user: str, groups: Callable[[str], Sequence[str]] | None = None
                   ) -> bool:
        """True when ``user`` is a configured manager or a member of a manager group.

        ``groups(group_id)`` lists a Slack user group's members (the caller asks Slack).
        """
        if user in self.stats_config.managers:
            return True
        if groups is None:
            return False
        return any(user in groups(group) for group in self.stats_config.manager_groups)

    # -- stats ---------------------------------------------------------------

    def parse(self, args: Sequence[str]) -> StatsQuery:
        return parse_stats_args(args, now=self.services.clock(), tz=self.tz,
                                departments=self.config.departments,
                                categories=[c.value for c in Category])

    def period(self, arg: str | None) -> Period:
        return parse_period(arg or "today", now=self.services.clock(), tz=self.tz)

    def stats(self, query: StatsQuery) -> StatsReport:
        """Every figure of ``/care stats`` for ``query`` (see ``bot.stats``)."""
        previous = query.period.previous()
        with session_scope(self.services.engine) as session:
            mentions = store.mention_rows(session=session, start=previous.start,
                                          end=query.period.end)
            engagements = store.engagement_rows(session=session, start=previous.start,
                                                end=query.period.end)
            history = store.classification_rows(session=session, start=query.period.start,
                                                end=query.period.end)
        return compute_stats(
            query, mentions, engagements, history,
            sla_minutes={c.value: m for c, m in self.config.sla_minutes.items()},
            exception_hashtags=self.stats_config.exception_hashtags, tz=self.tz,
            threshold=self.config.classification.threshold,
            routing={c.value: d for c, d in self.config.routing.items()},
            now=self.services.clock())

    # -- digests -------------------------------------------------------------

    def _rows(self, start: datetime, end: datetime) -> list[MentionRow]:
        with session_scope(self.services.engine) as session:
            rows = store.mention_rows(session=session, start=start, end=end)
        # Without the priority table, a mention's priority is its category's.
        return [r if r.priority is not None else
                replace(r, priority=CATEGORY_PRIORITY.get(r.category or "", 0)) for r in rows]

    def _ignore(self) -> list[str]:
        words = []
        for brand in self.config.brands:
            words.append(brand.name)
            words += brand.queries
        return words

    def _embedder(self) -> Embedder | None:
        embed = getattr(self.services.classifier, "embed", None)
        return embed if callable(embed) else None

    def daily_digests(self, day: date, *, department: str | None = None,
                      everything: bool = True) -> list[DailyDigest]:
        """The global newsletter for local ``day`` (when ``everything``) and each
        department's (or only ``department``'s)."""
        start, end = local_day(day, self.tz)
        prev_start, _ = local_day(day - timedelta(days=1), self.tz)
        base_start, _ = local_day(day - timedelta(days=7), self.tz)
        rows = self._rows(base_start, end)
        with session_scope(self.services.engine) as session:
            engagements = store.engagement_rows(session=session, start=prev_start, end=end)
        scopes: list[tuple[str, str | None]] = []
        if everything and department is None:
            scopes.append(("All departments", None))
        for name, dept in self.config.departments.items():
            if department in (None, name):
                scopes.append((dept.label or name, name))
        digests = []
        for label, scope in scopes:
            mine = [r for r in rows if scope is None or r.department == scope]
            digests.append(build_daily(
                scope=label, department=scope, day=day,
                mentions=[r for r in mine if start <= r.ingested_at < end],
                previous=[r for r in mine if prev_start <= r.ingested_at < start],
                baseline=[r for r in mine if r.ingested_at < start],
                engagements=engagements, top_themes=self.stats_config.digests.top_themes,
                notable=self.stats_config.digests.notable, embed=self._embedder(),
                ignore=self._ignore()))
        return digests

    def weekly_digest(self, last_day: date) -> WeeklyDigest:
        """The leadership digest of the seven local days ending with ``last_day``."""
        first_day = last_day - timedelta(days=6)
        start, _ = local_day(first_day, self.tz)
        _, end = local_day(last_day, self.tz)
        history_start, _ = local_day(first_day - timedelta(days=28), self.tz)
        rows = self._rows(history_start, end)
        with session_scope(self.services.engine) as session:
            engagements = store.engagement_rows(session=session, start=start, end=end)
        return build_weekly(first_day=first_day, last_day=last_day,
                            week=[r for r in rows if r.ingested_at >= start],
                            history=[r for r in rows if r.ingested_at < start],
                            engagements=engagements, ignore=self._ignore())

    def local_date(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()

    def send_daily(self, fire_time: datetime, render: Render, *, manual: bool = False,
                   department: str | None = None) -> Queued:
        """Queue yesterday's newsletters (relative to ``fire_time``), once per period.

        With ``department``, only that department's newsletter, to its channel.
        """
        cfg = self.stats_config.digests
        day = self.local_date(fire_time) - timedelta(days=1)
        messages: list[tuple[str, str, list[Payload]]] = []
        for digest in self.daily_digests(day, department=department):
            channel: str | None
            if digest.department is None:
                channel = cfg.daily_channel
            elif cfg.daily_per_department or department is not None:
                channel = self.config.departments[digest.department].channel
            else:
                channel = None
            if channel:
                messages.append((digest_target(channel, digest.department), channel,
                                 render(digest)))
        period = day.isoformat() if not manual else f"manual {self.services.clock().isoformat()}"
        return self._enqueue("daily", period, messages)

    def send_weekly(self, fire_time: datetime, render: Render, *, manual: bool = False
                    ) -> Queued:
        """Queue the leadership digest of the seven days before ``fire_time``'s local day."""
        channel = self.stats_config.digests.weekly_channel
        last_day = self.local_date(fire_time) - timedelta(days=1)
        digest = self.weekly_digest(last_day)
        period = (f"{digest.first_day.isoformat()}..{last_day.isoformat()}" if not manual
                  else f"manual {self.services.clock().isoformat()}")
        return self._enqueue("weekly", period,
                             [(channel, channel, render(digest))] if channel else [])

    def _enqueue(self, kind: str, period: str,
                 messages: list[tuple[str, str, list[Payload]]]) -> Queued:
        """Queue each (once-per-period key, channel, payloads), unless its key is logged."""
        now = self.services.clock()
        targets: list[tuple[str, int]] = []
        skipped: list[str] = []
        with session_scope(self.services.engine) as session:
            for target, channel, payloads in messages:
                entry = store.try_record_digest(session=session, kind=kind, period=period,
                                                target=target, now=now)
                if entry is None:
                    skipped.append(channel)
                    continue
                first_id = None
                for payload in payloads:
                    item = outbox.enqueue_message(session=session, channel=channel,
                                                  payload={**payload, "channel": channel},
                                                  now=now, priority=1)
                    first_id = first_id or item.id
                store.set_digest_outbox(session=session, log=entry, outbox_id=first_id or 0)
                targets.append((channel, len(payloads)))
        if targets:
            self.services._notify("outbox")
        log.info("%s digest %s: queued %s, already sent %s", kind, period, targets, skipped)
        return Queued(kind, period, targets, skipped)

    # -- spikes --------------------------------------------------------------

    def spike_rules(self) -> SpikeRules:
        cfg = self.stats_config.spikes
        return SpikeRules(window=timedelta(minutes=cfg.window_minutes),
                          baseline=timedelta(hours=cfg.baseline_hours),
                          min_count=cfg.min_count, factor=cfg.factor, z=cfg.z,
                          cooldown=timedelta(minutes=cfg.cooldown_minutes),
                          exception_min_count=cfg.exception_min_count,
                          min_history=cfg.min_history)

    def check_spikes(self, now: datetime, render: Render) -> SpikeAlert | None:
        """Detect spikes at ``now``; queue one alert for a new storm (see ``bot.spikes``)."""
        cfg = self.stats_config.spikes
        if not cfg.enabled:
            return None
        rules = self.spike_rules()
        watch = Watch(brands={b.name: b.queries or [b.name] for b in self.config.brands},
                      terms=cfg.terms, exception_hashtags=self.stats_config.exception_hashtags)
        rows = self._rows(now - rules.window - rules.baseline, now)
        spikes = detect(rows, now=now, watch=watch, rules=rules)
        if not spikes:
            return None
        channel = cfg.channel or self.config.triage_channel
        with session_scope(self.services.engine) as session:
            last_hot = store.spike_last_hot(session=session, keys=[s.key for s in spikes])
            fresh = to_alert(spikes, last_hot, now=now, rules=rules)
            store.mark_spikes(session=session, hot=[s.key for s in spikes],
                              alerted=[s.key for s in fresh], now=now)
            if not fresh:
                return None
            ids = {i for s in fresh for i in s.mention_ids}
            alert = SpikeAlert(now, fresh, {r.id: r for r in rows if r.id in ids})
            for payload in render(alert):
                outbox.enqueue_message(session=session, channel=channel,
                                       payload={**payload, "channel": channel}, now=now,
                                       priority=9)
        self.services._notify("outbox")
        return alert

    # -- export --------------------------------------------------------------

    def export_csv(self, period: Period) -> tuple[str, bytes, int]:
        """(filename, CSV bytes, row count) of mentions and engagements in ``period``.

        UTF-8 with a byte-order mark: without it Excel opens the file as the
        local ANSI code page and garbles accented and Cyrillic text."""
        with session_scope(self.services.engine) as session:
            rows = store.export_rows(session=session, start=period.start, end=period.end)
        buffer = io.StringIO()
        columns = store.export_columns()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])
        first = self.local_date(period.start)
        last = self.local_date(period.end - timedelta(microseconds=1))
        name = f"carebot-mentions-{first.isoformat()}-to-{last.isoformat()}.csv"
        return name, buffer.getvalue().encode("utf-8-sig"), len(rows)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # A leading formula character makes spreadsheets run the cell; quote it.
    return "'" + text if text.startswith(FORMULA_START) else text
