"""Attention use cases: who matters, what is late, and what to escalate.

* at routing: the author's profile (reach, reputation, customer tier, watch
  lists) gives the mention its priority and SLA target; a high-priority
  negative mention is announced in the alert channel; a mention by an author
  carebot engaged with recently is threaded under that card (monitoring);
* the SLA check (a scheduled job) warns in the card's thread at 75 % of the
  target, alerts on breach, and escalates unanswered entitled mentions;
* watch lists, the customer import and the App Home view-model.

Each notification is stamped in ``mention_attention`` by a conditional update
before it is queued, so it goes out once however many replicas run the check.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot import priority as prio
from bot import sla
from bot.config import CareConfig
from bot.customers import CustomerRow, HttpCustomerLookup
from bot.errors import CarebotError, InvalidInput, NotAllowed, SourceUnavailable
from bot.services.mrkdwn import escape
from storage import attention as state
from storage import audit, outbox, people
from storage.db import Engine, Session, session_scope
from storage.tables import Mention

log = logging.getLogger(__name__)

LIST_NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
#: After a CRM failure, routing does not ask the CRM again for this long.
CRM_RETRY = timedelta(minutes=1)
#: How long after its stamp an automatic escalation that left no trace (the process
#: died between the stamp and the escalation) is taken up again.
STRANDED_ESCALATION = timedelta(minutes=5)
HANDLE_RE = re.compile(r"^[^\s<>&]{1,255}$")


class Escalate(Protocol):
    """The Social 911 path: ``escalate(mention_id, reason, actor="carebot")``."""

    def __call__(self, mention_id: int, reason: str, actor: str = "carebot") -> object: ...


CustomerLookup = Callable[[str, str], CustomerRow | None]
ConversionScore = Callable[[str], tuple[float | None, int]]


@dataclass(frozen=True, slots=True)
class SlaCheck:
    """What one SLA check did (mention ids)."""

    warned: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HomeItem:
    mention_id: int
    category: str | None
    author: str
    text: str
    priority: int
    sla_status: str
    due_at: datetime | None
    channel: str | None
    watch_lists: tuple[str, ...] = ()
    follow_up: bool = False


@dataclass(frozen=True, slots=True)
class HomeView:
    """What a user's App Home shows."""

    user: str
    claimed: list[HomeItem]
    unclaimed: list[HomeItem]
    #: All of them, of which ``claimed``/``unclaimed`` are the highest-priority few.
    claimed_total: int
    unclaimed_total: int
    sla: dict[str, int]
    conversion_score: float | None
    conversions: int
    generated_at: datetime


def _source(mention: Mention) -> str:
    """The source as watch entries and customer links store it (``Twitter`` = ``twitter``)."""
    return mention.source.strip().lower()


def _short(text: str, limit: int = 280) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Attention:
    """Priority, SLA and watch-list use cases over one database.

    Args:
        engine: the database.
        config: the care configuration (``attention`` section).
        clock: source of "now".
        notify: wakes the outbox worker (``notify("outbox")``).
        escalate: the Social 911 path; ``None`` posts the escalation to the
            alert channel until the workflow's path is wired in.
        lookup: CRM lookup, raising ``SourceUnavailable`` when the CRM cannot tell;
            built from ``customer_lookup.url`` when ``None``.
        conversion_score: ``user -> (average score, count)`` for App Home.
    """

    def __init__(self, *, engine: Engine, config: CareConfig, clock: Callable[[], datetime],
                 notify: Callable[[str], None], escalate: Escalate | None = None,
                 lookup: CustomerLookup | None = None,
                 conversion_score: ConversionScore | None = None) -> None:
        self.engine = engine
        self.config = config
        self.cfg = config.attention
        self.clock = clock
        self._notify = notify
        self.escalate = escalate
        if lookup is None and self.cfg.customer_lookup.url:
            lookup = HttpCustomerLookup(self.cfg.customer_lookup).find
        self.lookup = lookup
        self._crm_down_until: datetime | None = None
        self.conversion_score = conversion_score

    # -- routing -------------------------------------------------------------

    def prepare(self, batch: Sequence[Mention]) -> None:
        """Ask the CRM about authors not checked recently (outside any transaction).

        A CRM that fails costs one timeout: the rest of the batch, and the batches of
        the next ``CRM_RETRY``, route with the tier they had, and the authors are not
        marked checked, so they are asked again once the CRM is back.
        """
        if self.lookup is None:
            return
        now = self.clock()
        if self._crm_down_until is not None and now < self._crm_down_until:
            return
        fresh_after = now - timedelta(hours=self.cfg.customer_lookup.refresh_hours)
        seen: set[tuple[str, str]] = set()
        for mention in batch:
            key = (_source(mention), people.normalize_handle(mention.author))
            if key in seen:
                continue
            seen.add(key)
            with session_scope(self.engine) as session:
                known = people.profile(session=session, source=key[0], handle=key[1])
            if known.crm_checked_at is not None and known.crm_checked_at > fresh_after:
                continue
            try:
                row = self.lookup(*key)
            except SourceUnavailable:
                self._crm_down_until = now + CRM_RETRY
                return
            with session_scope(self.engine) as session:
                people.touch_author(session=session, source=key[0], handle=key[1], now=now)
                people.mark_crm_checked(session=session, source=key[0], handle=key[1], now=now)
                if row is not None:
                    people.upsert_customers(session=session, records=[row], now=now,
                                            origin="crm")

    def on_routed(self, *, session: Session, mention: Mention, now: datetime,
                  posted: bool) -> prio.Priority:
        """Score a just-routed mention, start its SLA clock, announce and thread it."""
        mention_id = int(mention.id or 0)
        source = _source(mention)
        people.touch_author(session=session, source=source, handle=mention.author,
                            now=now, reach=mention.author_reach)
        who = people.profile(session=session, source=source, handle=mention.author)
        score = prio.score(prio.PriorityInput(
            category=mention.category, sentiment=mention.sentiment, tier=who.tier,
            reach=who.reach, reputation=who.reputation, watch_lists=who.watch_lists),
            self.cfg)
        entitled = prio.is_entitled(tier=who.tier, watch_lists=who.watch_lists, config=self.cfg)
        previous = state.get(session=session, mention_id=mention_id)
        started = previous.sla_started_at if previous else mention.ingested_at
        target = sla.target_minutes(mention.category, who.tier, self.config) if posted else None
        clock = sla.evaluate(started_at=started, target=target, now=now,
                             warn_fraction=self.cfg.sla.warn_at)
        original = None
        if posted and previous is None and self.cfg.monitoring_days > 0:
            original = state.engaged_original(
                session=session, source=mention.source, author=mention.author,
                exclude_id=mention_id, since=now - timedelta(days=self.cfg.monitoring_days))
        state.save_routing(
            session=session, mention_id=mention_id, priority=score.score,
            factors=score.factors, watch_lists=list(who.watch_lists), tier=who.tier,
            entitled=entitled, sla_minutes=target, started_at=started, warn_at=clock.warn_at,
            due_at=clock.due_at, follow_up_of=original[0] if original else None)
        audit.record(session=session, actor="carebot", action="prioritized",
                     mention_id=mention_id, now=now,
                     detail={"priority": score.score, "factors": score.factors,
                             "tier": who.tier, "watch_lists": list(who.watch_lists),
                             "sla_minutes": target})
        if posted:
            self._maybe_alert(session, mention, score.score, who, now)
        if original is not None:
            self._thread_follow_up(session, mention, original[1], score.score, now)
        return score

    def _maybe_alert(self, session: Session, mention: Mention, score: int,
                     who: people.Profile, now: datetime) -> None:
        channel = self.cfg.priority.alert_channel
        if (channel is None or mention.sentiment != "negative"
                or score < self.cfg.priority.alert_threshold):
            return
        if not state.try_stamp(session=session, mention_id=int(mention.id or 0),
                               stamp="alerted_at", now=now):
            return
        who_bits = [f"@{escape(mention.author)}"]
        if who.tier:
            who_bits.append(f"{who.tier} customer")
        if who.watch_lists:
            who_bits.append("watch: " + ", ".join(who.watch_lists))
        text = (f":rotating_light: *High-priority negative mention* — priority *{score}*"
                f" · {mention.category} · {' · '.join(who_bits)} in <#{mention.channel}>\n"
                f"> {escape(_short(mention.text))}")
        outbox.enqueue_message(session=session, channel=channel, now=now, priority=9,
                               mention_id=mention.id,
                               payload={"channel": channel, "text": text,
                                        "unfurl_links": False, "unfurl_media": False})
        audit.record(session=session, actor="carebot", action="priority_alerted",
                     mention_id=mention.id, now=now, detail={"channel": channel})

    def _thread_follow_up(self, session: Session, mention: Mention, post: Any, score: int,
                          now: datetime) -> None:
        text = (f":eyes: *Follow-up* from @{escape(mention.author)} after this engagement "
                f"(priority {score}, {mention.category}, card in <#{mention.channel}>):\n"
                f"> {escape(_short(mention.text))}\n"
                "Did the engagement convert them? Tag the conversion on this card.")
        outbox.enqueue_message(session=session, channel=post.channel, now=now, priority=8,
                               mention_id=mention.id,
                               payload={"channel": post.channel, "thread_ts": post.ts,
                                        "text": text, "unfurl_links": False,
                                        "unfurl_media": False})
        audit.record(session=session, actor="carebot", action="monitored_follow_up",
                     mention_id=mention.id, now=now,
                     detail={"original": post.mention_id, "thread_ts": post.ts})

    def record_first_response(self, *, mention_id: int, at: datetime | None = None) -> bool:
        """Stop the SLA clock (the workflow calls this; the audit log is also read)."""
        with session_scope(self.engine) as session:
            return state.mark_answered(session=session, mention_id=mention_id,
                                       at=at or self.clock())

    # -- the SLA check -------------------------------------------------------

    def check_sla(self, now: datetime | None = None) -> SlaCheck:
        """Warn, alert on breach, and escalate entitled mentions; each exactly once.

        Args:
            now: the time to evaluate at; the scheduler passes the period's fire time.
        """
        now = now or self.clock()
        result = SlaCheck()
        with session_scope(self.engine) as session:
            state.sync_answers_from_audit(session=session)
            for row in state.due_for(session=session, stamp="breached_at", boundary="due_at",
                                     now=now):
                # Past due without a warning (e.g. after downtime): the breach says it all.
                state.try_stamp(session=session, mention_id=row.mention_id, stamp="warned_at",
                                now=now)
                if state.try_stamp(session=session, mention_id=row.mention_id,
                                   stamp="breached_at", now=now):
                    self._sla_message(session, row, now, breached=True)
                    result.breached.append(row.mention_id)
            for row in state.due_for(session=session, stamp="warned_at", boundary="warn_at",
                                     now=now):
                if state.try_stamp(session=session, mention_id=row.mention_id,
                                   stamp="warned_at", now=now):
                    self._sla_message(session, row, now, breached=False)
                    result.warned.append(row.mention_id)
        result.escalated.extend(self._auto_escalate(now))
        if result.warned or result.breached or result.escalated:
            self._notify("outbox")
        return result

    def _sla_message(self, session: Session, row: state.MentionAttention, now: datetime, *,
                     breached: bool) -> None:
        mention = session.get(Mention, row.mention_id)
        if mention is None:
            return
        post = outbox.current_post(session=session, mention_id=row.mention_id)
        group = self.cfg.sla.oncall_group
        ping = f"<!subteam^{group}> " if group else ""
        target = row.sla_minutes or 0
        if breached:
            text = (f":rotating_light: {ping}*SLA breached* — no first response within "
                    f"{target} min to this {mention.category} (priority {row.priority}).")
        else:
            left = max(0, round(((row.due_at or now) - now).total_seconds() / 60))
            text = (f":hourglass_flowing_sand: {ping}*SLA warning* — {left} min left of the "
                    f"{target} min first-response target for this {mention.category} "
                    f"(priority {row.priority}).")
        channel = post.channel if post else (mention.channel or self.config.triage_channel)
        payload: dict[str, Any] = {"channel": channel, "text": text}
        if post is not None:  # in the card's thread, its ts resolved at delivery
            payload[outbox.THREAD_ON_CARD] = True
        outbox.enqueue_message(session=session, channel=channel, payload=payload, now=now,
                               priority=9, mention_id=row.mention_id)
        alert_channel = self.cfg.priority.alert_channel
        if breached and alert_channel:
            where = f" in <#{channel}>" if channel else ""
            outbox.enqueue_message(
                session=session, channel=alert_channel, now=now, priority=9,
                mention_id=row.mention_id,
                payload={"channel": alert_channel, "unfurl_links": False,
                         "text": (f":rotating_light: {ping}*SLA breached* — {mention.category} "
                                  f"from @{escape(mention.author)}{where}, priority "
                                  f"{row.priority}, target {target} min:\n"
                                  f"> {escape(_short(mention.text, 200))}")})
        outbox.enqueue_card_update(session=session, mention_id=row.mention_id, now=now)
        audit.record(session=session, actor="carebot",
                     action="sla_breached" if breached else "sla_warned",
                     mention_id=row.mention_id, now=now,
                     detail={"target_minutes": target, "priority": row.priority})

    def _auto_escalate(self, now: datetime) -> list[int]:
        """Escalate entitled, unanswered mentions; stamp first so it happens once."""
        minutes = self.cfg.sla.entitled_escalation_minutes
        with session_scope(self.engine) as session:
            # Stamped by a process that died before it escalated: un-stamp, so the
            # candidates below take them up again (a conditional update: one replica).
            for row in state.stranded_escalations(
                    session=session, stamped_before=now - STRANDED_ESCALATION):
                if row.escalated_at is not None:
                    state.clear_stamp(session=session, mention_id=row.mention_id,
                                      stamp="escalated_at", value=row.escalated_at)
                    log.warning("automatic escalation of mention %s was stamped at %s and "
                                "never done: retrying", row.mention_id, row.escalated_at)
            session.flush()
            candidates = state.escalation_candidates(
                session=session, started_before=now - timedelta(minutes=minutes),
                min_priority=self.cfg.sla.escalation_min_priority,
                categories=[c.value for c in self.cfg.sla.escalation_categories])
            mine: list[tuple[int, str]] = []
            for row in candidates:
                if state.try_stamp(session=session, mention_id=row.mention_id,
                                   stamp="escalated_at", now=now):
                    who = ", ".join(row.watch_lists) or f"{row.tier} customer"
                    reason = (f"Automatic: entitled author ({who}) unanswered for {minutes} min"
                              f" — priority {row.priority}")
                    mine.append((row.mention_id, reason))
                    audit.record(session=session, actor="carebot", action="auto_escalated",
                                 mention_id=row.mention_id, now=now,
                                 detail={"reason": reason, "priority": row.priority,
                                         "factors": row.factors})
        done: list[int] = []
        for mention_id, reason in mine:
            try:
                if self.escalate is not None:
                    self.escalate(mention_id, reason, actor="carebot")
                else:
                    self._fallback_escalation(mention_id, reason, now)
                done.append(mention_id)
            except CarebotError as exc:
                # Refused for good (e.g. a human escalated or resolved it meanwhile).
                log.info("automatic escalation of mention %s refused: %s", mention_id, exc)
                with session_scope(self.engine) as session:
                    audit.record(session=session, actor="carebot",
                                 action="auto_escalation_refused", mention_id=mention_id,
                                 now=self.clock(), detail={"reason": str(exc)})
            except Exception:  # noqa: BLE001 - un-stamp so the next check retries it
                log.exception("automatic escalation of mention %s failed", mention_id)
                with session_scope(self.engine) as session:
                    state.clear_stamp(session=session, mention_id=mention_id,
                                      stamp="escalated_at", value=now)
                    audit.record(session=session, actor="carebot",
                                 action="auto_escalation_failed", mention_id=mention_id,
                                 now=self.clock())
        return done

    def _fallback_escalation(self, mention_id: int, reason: str, now: datetime) -> None:
        channel = self.cfg.priority.alert_channel or self.config.triage_channel
        group = self.cfg.sla.oncall_group
        ping = f"<!subteam^{group}> " if group else ""
        with session_scope(self.engine) as session:
            mention = session.get(Mention, mention_id)
            text = (f":sos: {ping}*Social 911* — {escape(reason)}\n"
                    f"> @{escape(mention.author if mention else '?')}: "
                    f"{escape(_short(mention.text if mention else ''))}")
            outbox.enqueue_message(session=session, channel=channel, now=now, priority=9,
                                   mention_id=mention_id,
                                   payload={"channel": channel, "text": text})
            audit.record(session=session, actor="carebot", action="auto_escalation_posted",
                         mention_id=mention_id, now=now, detail={"channel": channel})

    # -- watch lists ---------------------------------------------------------

    def _require_admin(self, user: str) -> None:
        if user not in self.cfg.watch.admins:
            raise NotAllowed("Only watch-list admins can change watch lists "
                             "(attention.watch.admins in the care config).")

    @staticmethod
    def parse_target(list_name: str, handle: str) -> tuple[str, str, str]:
        """Validate ``list_name`` and ``[source:]@handle`` -> (list, source, handle)."""
        name = list_name.strip().lower()
        if not LIST_NAME_RE.match(name):
            raise InvalidInput(f"`{list_name}` is not a list name (letters, digits, _ or -).")
        source, sep, bare = handle.partition(":")
        if not sep or bare.startswith("//"):
            source, bare = people.ANY_SOURCE, handle
        bare = people.normalize_handle(bare)
        if not bare or not HANDLE_RE.match(bare):
            raise InvalidInput(f"`{handle}` is not a handle; use @handle or source:@handle.")
        return name, source.strip().lower() or people.ANY_SOURCE, bare

    def watch_add(self, *, user: str, list_name: str, handle: str) -> bool:
        """Put a handle on a watch list (admins only). False if it was there already."""
        self._require_admin(user)
        name, source, bare = self.parse_target(list_name, handle)
        now = self.clock()
        with session_scope(self.engine) as session:
            added = people.add_watch(session=session, list_name=name, handle=bare,
                                     source=source, added_by=user, now=now)
            if added:
                audit.record(session=session, actor=user, action="watch_added", now=now,
                             detail={"list": name, "source": source, "handle": bare})
                self._rescore_open(session, bare, source, now)
        return added

    def _rescore_open(self, session: Session, handle: str, source: str, now: datetime) -> None:
        """The author's mentions still waiting get their new priority and entitlement
        (a key customer added to a watch list after they wrote is escalated if left
        waiting, like one added before)."""
        for mention in state.open_mentions_of(
                session=session, handle=handle,
                source=None if source == people.ANY_SOURCE else source):
            self.on_routed(session=session, mention=mention, now=now, posted=True)

    def watch_remove(self, *, user: str, list_name: str, handle: str) -> bool:
        """Take a handle off a watch list (admins only). False if it was not on it."""
        self._require_admin(user)
        name, source, bare = self.parse_target(list_name, handle)
        now = self.clock()
        with session_scope(self.engine) as session:
            removed = people.remove_watch(session=session, list_name=name, handle=bare,
                                          source=source)
            if removed:
                audit.record(session=session, actor=user, action="watch_removed", now=now,
                             detail={"list": name, "source": source, "handle": bare})
                self._rescore_open(session, bare, source, now)
        return removed

    def watch_lists(self, list_name: str | None = None) -> dict[str, list[str]]:
        """List name -> handles (``source:handle`` when bound to one source)."""
        with session_scope(self.engine) as session:
            entries = people.watch_entries(session=session, list_name=list_name)
        out: dict[str, list[str]] = {}
        for entry in entries:
            shown = (f"@{entry.handle}" if entry.source == people.ANY_SOURCE
                     else f"{entry.source}:@{entry.handle}")
            out.setdefault(entry.list_name, []).append(shown)
        return out

    # -- customers -----------------------------------------------------------

    def import_customers(self, rows: Iterable[CustomerRow]) -> tuple[int, int]:
        """Insert or update customers from rows (see ``bot.customers``). (created, updated)."""
        now = self.clock()
        with session_scope(self.engine) as session:
            created, updated = people.upsert_customers(session=session, records=list(rows),
                                                       now=now)
            audit.record(session=session, actor="carebot", action="customers_imported",
                         now=now, detail={"created": created, "updated": updated})
        return created, updated

    # -- views ---------------------------------------------------------------

    def card_fields(self, session: Session, mention_id: int) -> dict[str, Any]:
        """The attention fields of a card (``CardView`` keyword arguments)."""
        row = state.get(session=session, mention_id=mention_id)
        if row is None:
            return {}
        return {"priority": row.priority, "watch_lists": tuple(row.watch_lists),
                "customer_tier": row.tier, "sla_status": self._status(row, self.clock()),
                "sla_due_at": row.due_at, "follow_up_of": row.follow_up_of}

    def _status(self, row: state.MentionAttention, now: datetime) -> str:
        if row.sla_minutes is None:
            return sla.SlaStatus.NONE.value
        return sla.evaluate(started_at=row.sla_started_at, target=row.sla_minutes, now=now,
                            warn_fraction=self.cfg.sla.warn_at,
                            answered_at=row.answered_at).status.value

    def home(self, *, user: str, limit: int = 15) -> HomeView:
        """The App Home of ``user``: their mentions, the unclaimed queue, SLA, conversions."""
        now = self.clock()
        with session_scope(self.engine) as session:
            state.sync_answers_from_audit(session=session)
            claimed = state.open_queue(session=session, claimed_by=user, limit=limit)
            unclaimed = state.open_queue(session=session, claimed_by=None, limit=limit)
            totals = (state.open_count(session=session, claimed_by=user),
                      state.open_count(session=session, claimed_by=None))
            counts = state.sla_counts(session=session, now=now)
            items = ([self._item(m, a, now) for m, a in claimed],
                     [self._item(m, a, now) for m, a in unclaimed])
        score, count = self.conversion_score(user) if self.conversion_score else (None, 0)
        return HomeView(user=user, claimed=items[0], unclaimed=items[1],
                        claimed_total=totals[0], unclaimed_total=totals[1], sla=counts,
                        conversion_score=score, conversions=count, generated_at=now)

    def _item(self, mention: Mention, row: state.MentionAttention, now: datetime) -> HomeItem:
        return HomeItem(mention_id=int(mention.id or 0), category=mention.category,
                        author=mention.author, text=_short(mention.text, 200),
                        priority=row.priority, sla_status=self._status(row, now),
                        due_at=row.due_at, channel=mention.channel,
                        watch_lists=tuple(row.watch_lists),
                        follow_up=row.follow_up_of is not None)
