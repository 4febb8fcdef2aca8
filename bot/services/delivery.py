"""Outbox use cases for the Slack deliverer: lease, render inputs, outcome."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.services.core import Services
from bot.views import CardView
from storage import audit, outbox, pacing
from storage.db import session_scope

#: Transient failures (5xx, timeouts) are retried with capped exponential
#: backoff. A row still failing after this many attempts *and* this long is
#: parked (kept, alerted, skipped): a Slack outage of an hour parks nothing.
MAX_ATTEMPTS = 12
MAX_TRANSIENT_AGE = timedelta(hours=1)
#: Permanent failures (Slack said no: channel_not_found, invalid_blocks, ...)
#: are parked after a few attempts.
MAX_PERMANENT_ATTEMPTS = 3
#: Backoff between transient failures is capped so that cards flow within a
#: minute of Slack recovering from an outage.
MAX_BACKOFF_SECONDS = 60.0
#: An update or thread message waits this long for its card's ts before it gives up.
MAX_CARD_WAIT = timedelta(hours=24)
#: Metadata event type of the alert about a parked row (never itself alerted).
PARK_ALERT = "carebot_outbox_parked"


def _thread_on_card(session: Any, mention_id: int | None, payload: dict[str, Any]) -> int | None:
    """Resolve :data:`storage.outbox.THREAD_ON_CARD` in ``payload``: the channel and
    ``thread_ts`` of the card's current post, or the key left in place while that post
    has no ts (the task waits). A card that moved since the message was queued
    (reclassified) takes the message along to its new thread. Returns the id of the post
    it waits for, if it waits."""
    post = outbox.current_post(session=session, mention_id=mention_id or -1)
    if post is not None and post.ts is None:
        return post.id
    payload.pop(outbox.THREAD_ON_CARD, None)
    if post is not None:
        payload["channel"] = post.channel
        payload["thread_ts"] = post.ts
    return None


@dataclass(frozen=True, slots=True)
class OutboxTask:
    id: int
    kind: str
    channel: str
    attempts: int
    priority: int
    mention_id: int | None = None
    ts: str | None = None
    card: CardView | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    #: A previous attempt may have reached Slack (its worker died before
    #: recording the outcome): look for the message before sending again.
    in_doubt: bool = False
    created_at: datetime | None = None
    #: The card post this task belongs to (an update) or waits for (a thread message).
    post_id: int | None = None
    #: For an in-doubt reply in its card's thread: ``(channel, thread_ts)`` of every
    #: thread the card has had. The interrupted attempt may have replied under a card
    #: that has moved since (reclassified), so all of them are searched.
    doubt_threads: tuple[tuple[str, str], ...] = ()

    @property
    def waits_for_card(self) -> bool:
        """An update, or a reply in the card's thread, whose card has no ts yet."""
        if self.kind == outbox.UPDATE_CARD:
            return self.ts is None
        return outbox.THREAD_ON_CARD in self.payload


@dataclass(frozen=True, slots=True)
class ParkedItem:
    id: int
    kind: str
    channel: str
    mention_id: int | None
    attempts: int
    error: str
    created_at: datetime


def parked_items(services: Services) -> list[ParkedItem]:
    """Outbox rows given up on (what ``carebot outbox list`` shows)."""
    with session_scope(services.engine) as session:
        return [ParkedItem(item.id or 0, item.kind, item.channel, item.mention_id,
                           item.attempts, item.last_error or "", item.created_at)
                for item in outbox.parked(session=session)]


def requeue_parked(services: Services, item_ids: Collection[int] | None = None) -> list[int]:
    """Send parked rows again (all, or ``item_ids``); running workers pick them up."""
    now = services.clock()
    with session_scope(services.engine) as session:
        done = outbox.requeue_parked(session=session, now=now, item_ids=item_ids)
        for item_id in done:
            audit.record(session=session, actor="operator", action="outbox_requeued",
                         mention_id=None, now=now, detail={"outbox_id": item_id})
    services._notify("outbox")
    return done


class Delivery:
    """Leases outbox work and records how each attempt went."""

    def __init__(self, services: Services, *, owner: str, lease: timedelta = timedelta(seconds=60),
                 rate: float = 1.0, burst: int = 3):
        self.services = services
        self.owner = owner
        self.lease = lease
        #: Slack's per-channel pace: ``rate`` messages a second, bursts of ``burst``.
        self.rate = rate
        self.burst = burst

    # -- pacing shared by every replica (storage/pacing.py) -----------------

    def take_slot(self, channel: str) -> float:
        """Take a send slot for ``channel``: 0.0 when taken, else seconds to wait."""
        with session_scope(self.services.engine) as session:
            return pacing.take(session=session, channel=channel, now=self.services.clock(),
                               rate=self.rate, burst=self.burst)

    def pause_channel(self, channel: str, seconds: float) -> None:
        with session_scope(self.services.engine) as session:
            pacing.pause(session=session, channel=channel, now=self.services.clock(),
                         seconds=seconds, burst=self.burst)

    def paused_channels(self) -> dict[str, float]:
        """Channels that cannot send now, with the seconds until each can."""
        with session_scope(self.services.engine) as session:
            now = self.services.clock()
            return {channel: (ready - now).total_seconds()
                    for channel, ready in pacing.blocked(session=session, now=now).items()}

    def lease_due(self, *, limit: int, skip_channels: Collection[str] = ()) -> list[OutboxTask]:
        now = self.services.clock()
        tasks: list[OutboxTask] = []
        with session_scope(self.services.engine) as session:
            items = outbox.lease_due(session=session, owner=self.owner, now=now,
                                     lease=self.lease, limit=limit, skip_channels=skip_channels,
                                     per_channel=self.burst)
            for item, in_doubt in items:
                ts = None
                card = None
                post_id = item.post_id
                threads: tuple[tuple[str, str], ...] = ()
                payload = dict(item.payload)
                if item.kind in (outbox.POST_CARD, outbox.UPDATE_CARD):
                    post = outbox.get_post(session=session, post_id=item.post_id or -1)
                    ts = post.ts if post else None
                    card = self.services.card_view_in(session, item.mention_id or -1)
                elif payload.get(outbox.THREAD_ON_CARD):
                    post_id = _thread_on_card(session, item.mention_id, payload)
                    if in_doubt and item.mention_id is not None:
                        threads = tuple(outbox.posted_threads(session=session,
                                                              mention_id=item.mention_id))
                tasks.append(OutboxTask(id=item.id or 0, kind=item.kind, channel=item.channel,
                                        attempts=item.attempts, priority=item.priority,
                                        mention_id=item.mention_id, ts=ts, card=card,
                                        payload=payload, in_doubt=in_doubt,
                                        created_at=item.created_at, post_id=post_id,
                                        doubt_threads=threads))
        return tasks

    def renew(self, task: OutboxTask) -> bool:
        """Hold ``task`` for one more lease before calling Slack; False if it was taken over."""
        with session_scope(self.services.engine) as session:
            return outbox.renew_lease(session=session, item_id=task.id, owner=self.owner,
                                      now=self.services.clock(), lease=self.lease)

    def succeeded(self, task: OutboxTask, *, ts: str | None) -> bool:
        now = self.services.clock()
        with session_scope(self.services.engine) as session:
            done = outbox.mark_sent(session=session, item_id=task.id, owner=self.owner, now=now,
                                    ts=ts)
            if done and task.kind == outbox.POST_CARD:
                audit.record(session=session, actor="carebot", action="posted",
                             mention_id=task.mention_id, now=now,
                             detail={"channel": task.channel, "ts": ts})
        if done and task.kind == outbox.POST_CARD and task.mention_id is not None:
            # Updates and thread replies queued while the post was in flight wait for
            # this ts with a backoff; they are due now. Own transaction: the card is
            # marked sent whatever happens here.
            with session_scope(self.services.engine) as session:
                outbox.wake_waiting(session=session, mention_id=task.mention_id, now=now)
        return done

    def release(self, task: OutboxTask, *, seconds: float) -> None:
        """Give a leased task back untried, due again in ``seconds`` (pacing)."""
        now = self.services.clock()
        with session_scope(self.services.engine) as session:
            outbox.mark_retry(session=session, item_id=task.id, owner=self.owner,
                              retry_at=now + timedelta(seconds=seconds), error="paced",
                              refund=True)

    def wait_for_card(self, task: OutboxTask) -> str:
        """Put back a task whose card has no ts yet. Returns ``"retry"`` or ``"parked"``.

        Waiting is not failing: it spends no attempt, and it backs off with the task's age
        (a tenth of it, 1 s to 60 s). When the card's own post is parked, the task parks
        with it, silently (the card's alert covers both; ``carebot outbox requeue`` of
        the card brings both back). After ``MAX_CARD_WAIT`` it parks on its own, alerted.
        """
        now = self.services.clock()
        age = now - (task.created_at or now)
        with session_scope(self.services.engine) as session:
            if task.post_id is not None and outbox.post_parked(session=session,
                                                               post_id=task.post_id):
                outbox.mark_parked(session=session, item_id=task.id, owner=self.owner,
                                   error="its card's post is parked")
                return "parked"
            if age < MAX_CARD_WAIT:
                delay = min(max(1.0, age.total_seconds() / 10), MAX_BACKOFF_SECONDS)
                post = (outbox.get_post(session=session, post_id=task.post_id)
                        if task.post_id is not None else None)
                if post is not None and post.ts is not None:
                    delay = 0.0  # the card went out since this task was leased (same batch)
                outbox.mark_retry(session=session, item_id=task.id, owner=self.owner,
                                  retry_at=now + timedelta(seconds=delay),
                                  error=outbox.WAITING_FOR_CARD, refund=True)
                return "retry"
        return self.failed(task, error="its card was never posted", retry_after=None,
                           permanent=True)

    def failed(
        self, task: OutboxTask, *, error: str, retry_after: float | None, permanent: bool
    ) -> str:
        """Record a failed attempt. Returns ``"retry"`` or ``"parked"``.

        ``retry_after`` (Slack's 429 header) is honoured exactly and does not
        count as an attempt: rate limiting is pacing, not failure.
        """
        now = self.services.clock()
        if permanent:
            give_up = task.attempts >= MAX_PERMANENT_ATTEMPTS
        else:
            age = now - (task.created_at or now)
            give_up = task.attempts >= MAX_ATTEMPTS and age >= MAX_TRANSIENT_AGE
        with session_scope(self.services.engine) as session:
            if retry_after is not None:
                outbox.mark_retry(session=session, item_id=task.id, owner=self.owner,
                                  retry_at=now + timedelta(seconds=retry_after), error=error,
                                  refund=True)
                return "retry"
            if give_up:
                outbox.mark_parked(session=session, item_id=task.id, owner=self.owner,
                                   error=error)
                audit.record(session=session, actor="carebot", action="outbox_parked",
                             mention_id=task.mention_id, now=now,
                             detail={"outbox_id": task.id, "kind": task.kind, "error": error})
                self._alert_parked(session, task, error, now)
                return "parked"
            delay = min(2.0 ** (task.attempts - 1), MAX_BACKOFF_SECONDS)
            outbox.mark_retry(session=session, item_id=task.id, owner=self.owner,
                              retry_at=now + timedelta(seconds=delay), error=error, refund=False)
            return "retry"

    def _alert_parked(self, session: Any, task: OutboxTask, error: str, now: datetime) -> None:
        """Tell the team a message was given up on (in the alert or triage channel)."""
        if (task.payload.get("metadata") or {}).get("event_type") == PARK_ALERT:
            return  # an alert that cannot be delivered must not alert about itself
        config = self.services.config
        channel = config.attention.priority.alert_channel or config.triage_channel
        if task.kind in (outbox.POST_CARD, outbox.UPDATE_CARD):
            what = f"the card for mention {task.mention_id}"
        elif task.mention_id:
            what = f"a message about mention {task.mention_id}"
        else:
            what = "a message"
        text = (f":warning: carebot stopped retrying {what} to <#{task.channel}> after "
                f"{task.attempts} attempts: `{error}`. It is kept in the outbox "
                f"(id {task.id}) for replay: fix the cause (e.g. invite the app to the "
                f"channel), then run `carebot outbox requeue {task.id}`.")
        outbox.enqueue_message(session=session, channel=channel, now=now, priority=9,
                               payload={"channel": channel, "text": text,
                                        "metadata": {"event_type": PARK_ALERT,
                                                     "event_payload": {"parked": task.id}}})
        self.services._notify("outbox")

