"""The durable Slack outbox and the card posts it produces.

Work is recorded here, in the same transaction as the state change that
causes it, before any Web API call. Delivery leases rows (a conditional update
decides the one owner), and marks them sent with the message ``ts`` after the
call, so a crash or a Slack outage delays work but never loses it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage import leases
from storage.tables import Outbox, SlackPost

POST_CARD = "post_card"
UPDATE_CARD = "update_card"
MESSAGE = "message"
#: A message payload key: thread this message under its mention's card, whose ts is
#: looked up at delivery time (the card may still be on its way when it is queued).
THREAD_ON_CARD = "carebot_thread_on_card"
#: ``last_error`` of a row put back because its card has no ts yet (not a failure).
WAITING_FOR_CARD = "card not posted yet"


def enqueue_post_card(
    *, session: Session, mention_id: int, channel: str, priority: int, now: datetime
) -> SlackPost:
    """Record a card post for ``mention_id`` in ``channel`` (once per channel)."""
    existing = session.exec(
        select(SlackPost).where(SlackPost.mention_id == mention_id, SlackPost.channel == channel)
    ).first()
    if existing is not None:
        return existing
    for old in session.exec(
        select(SlackPost).where(SlackPost.mention_id == mention_id, col(SlackPost.is_current))
    ):
        old.is_current = False
        session.add(old)
    post = SlackPost(mention_id=mention_id, channel=channel, created_at=now)
    session.add(post)
    session.flush()
    session.add(
        Outbox(
            kind=POST_CARD,
            mention_id=mention_id,
            post_id=post.id,
            channel=channel,
            priority=priority,
            created_at=now,
            next_attempt_at=now,
        )
    )
    return post


def enqueue_card_update(*, session: Session, mention_id: int, now: datetime) -> int:
    """Queue an in-place refresh of every card of a mention.

    An update already pending for the same card, and not leased, is reused. A card whose post
    has no ``ts`` yet may be in flight, rendered before this change: its update
    waits for the ts (the deliverer retries it), so the card never stays stale.
    Returns how many updates are queued.
    """
    queued = 0
    # Row locks order this against a post being marked sent (PostgreSQL): either
    # we see its ts and queue the update, or the deliverer sees our change.
    posts = session.exec(
        select(SlackPost).where(SlackPost.mention_id == mention_id).with_for_update()
    ).all()
    for post in posts:
        pending = session.exec(
            select(Outbox.id).where(
                Outbox.kind == UPDATE_CARD,
                Outbox.post_id == post.id,
                Outbox.status == "pending",
                # Only a row no deliverer holds: a leased row has rendered the old
                # state, and an *expired* lease may still be sending it (slow Slack)
                # and mark it sent — reusing it would lose this change.
                col(Outbox.lease_until).is_(None),
            )
            # Wait for a deliverer leasing this row right now (PostgreSQL): once it
            # commits the row is leased and rendered the old state, so queue anew.
            .with_for_update()
        ).first()
        if pending is None:
            session.add(
                Outbox(
                    kind=UPDATE_CARD,
                    mention_id=mention_id,
                    post_id=post.id,
                    channel=post.channel,
                    priority=10,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
            queued += 1
    return queued


def enqueue_message(
    *,
    session: Session,
    channel: str,
    payload: dict[str, Any],
    now: datetime,
    priority: int = 0,
    mention_id: int | None = None,
) -> Outbox:
    """Queue a ready-made message (``payload`` holds ``chat.postMessage`` arguments)."""
    item = Outbox(
        kind=MESSAGE,
        mention_id=mention_id,
        channel=channel,
        payload=payload,
        priority=priority,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(item)
    session.flush()
    return item


def lease_due(
    *,
    session: Session,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_channels: Collection[str] = (),
    per_channel: int | None = None,
) -> list[tuple[Outbox, bool]]:
    """Lease due outbox rows, highest priority first, oldest first.

    Returns ``(row, in_doubt)`` pairs. ``in_doubt`` is true when the row's
    previous lease expired with its owner still set: that worker died between
    calling Slack and recording the outcome, so the call may have gone out.
    """
    free = or_(col(Outbox.lease_until).is_(None), col(Outbox.lease_until) < now)
    # An update of a card another worker is updating right now waits for it: that
    # worker rendered an older state, and its chat.update landing after ours would
    # put the older card back.
    other = aliased(Outbox)
    card_in_flight = exists().where(
        col(other.post_id) == col(Outbox.post_id), col(other.kind) == UPDATE_CARD,
        col(other.id) != col(Outbox.id), col(other.status) == "pending",
        col(other.lease_until) >= now)
    query = (
        select(Outbox.id, Outbox.lease_owner, Outbox.channel)
        .where(Outbox.status == "pending", col(Outbox.next_attempt_at) <= now, free,
               or_(col(Outbox.kind) != UPDATE_CARD, ~card_in_flight))
        .order_by(col(Outbox.priority).desc(), col(Outbox.id))
        .limit(limit if per_channel is None else limit * 4)
        # PostgreSQL: pass over rows a Slack action is changing right now. Waiting
        # for them while holding rows leased earlier in this batch deadlocks with
        # an action that needs those next (a reclassification cancelling a card
        # and its updates). They are due again on the next pass.
        .with_for_update(skip_locked=True)
    )
    if skip_channels:
        query = query.where(col(Outbox.channel).not_in(list(skip_channels)))
    candidates = list(session.exec(query).all())
    if per_channel is not None:
        # No more rows per channel than it can send now: the rest would only be
        # leased and handed back. Other channels get their turn in this batch.
        taken: dict[str, int] = {}
        kept = []
        for row in candidates:
            if taken.get(row[2], 0) < per_channel:
                taken[row[2]] = taken.get(row[2], 0) + 1
                kept.append(row)
        candidates = kept[:limit]
    leased: dict[int, bool] = {}
    for item_id, previous_owner, _channel in candidates:
        result = session.execute(
            update(Outbox)
            .where(and_(col(Outbox.id) == item_id, col(Outbox.status) == "pending", free))
            .values(lease_owner=owner, lease_until=now + lease, attempts=Outbox.attempts + 1)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            leased[int(item_id)] = previous_owner is not None  # type: ignore[arg-type]
    if not leased:
        return []
    rows = session.exec(
        select(Outbox)
        .where(col(Outbox.id).in_(list(leased)))
        .order_by(col(Outbox.priority).desc(), col(Outbox.id))
    )
    return [(row, leased[row.id or 0]) for row in rows]


def renew_lease(*, session: Session, item_id: int, owner: str, now: datetime,
                lease: timedelta) -> bool:
    """Extend ``owner``'s lease on a row it is about to send (:func:`storage.leases.renew`)."""
    return leases.renew(session=session, table=Outbox, item_id=item_id, owner=owner, now=now,
                        lease=lease)


def mark_sent(*, session: Session, item_id: int, owner: str, now: datetime, ts: str | None) -> bool:
    """Mark a leased row sent (and its post with ``ts``). False if the lease was lost.

    Locks the post before the outbox row, the order a Slack action takes them in
    (``storage.workflow.move_card``), so the two never wait on each other.
    """
    post_id = session.exec(select(Outbox.post_id).where(col(Outbox.id) == item_id)).first()
    if post_id is not None:
        session.exec(select(SlackPost.id).where(col(SlackPost.id) == post_id).with_for_update())
    item = session.exec(select(Outbox).where(col(Outbox.id) == item_id).with_for_update()).first()
    if item is None or item.lease_owner != owner or item.status != "pending":
        return False
    item.status = "sent"
    item.sent_at = now
    item.lease_until = None
    session.add(item)
    if item.kind == POST_CARD and item.post_id is not None and ts is not None:
        post = session.get(SlackPost, item.post_id)
        if post is not None:
            post.ts = ts
            post.posted_at = now
            session.add(post)
    return True


def wake_waiting(*, session: Session, mention_id: int, now: datetime) -> int:
    """Make the rows waiting for ``mention_id``'s card due now; returns how many.

    Called once the card's ts is recorded: without it an update or thread reply
    would sleep out its backoff (up to a minute) after the card appeared. Rows
    locked by someone else are passed over (``SKIP LOCKED``, as :func:`lease_due`
    does), so waking never waits on a lock; those rows are being handled anyway.
    """
    ids = list(
        session.exec(
            select(Outbox.id)
            .where(
                col(Outbox.mention_id) == mention_id,
                col(Outbox.status) == "pending",
                col(Outbox.last_error) == WAITING_FOR_CARD,
                col(Outbox.next_attempt_at) > now,
                col(Outbox.lease_owner).is_(None),
            )
            .with_for_update(skip_locked=True)
        ).all()
    )
    if ids:
        session.execute(
            update(Outbox).where(col(Outbox.id).in_(ids)).values(next_attempt_at=now)
        )
    return len(ids)


def mark_retry(
    *, session: Session, item_id: int, owner: str, retry_at: datetime, error: str, refund: bool
) -> None:
    """Put a leased row back for a later attempt; ``refund`` does not count the attempt."""
    item = session.get(Outbox, item_id)
    if item is None or item.lease_owner != owner:
        return
    item.next_attempt_at = retry_at
    item.lease_owner = None
    item.lease_until = None
    item.last_error = error[:500]
    if refund:
        item.attempts = max(0, item.attempts - 1)
    session.add(item)


def mark_parked(*, session: Session, item_id: int, owner: str, error: str) -> None:
    """Stop retrying a row that keeps failing; it stays for inspection and replay."""
    item = session.get(Outbox, item_id)
    if item is None or item.lease_owner != owner:
        return
    item.status = "parked"
    item.lease_until = None
    item.last_error = error[:500]
    session.add(item)


def post_parked(*, session: Session, post_id: int) -> bool:
    """Whether card post ``post_id`` was given up on (its ``post_card`` row is parked)."""
    return session.exec(
        select(Outbox.id).where(col(Outbox.post_id) == post_id, col(Outbox.kind) == POST_CARD,
                                col(Outbox.status) == "parked")
    ).first() is not None


def parked(*, session: Session) -> list[Outbox]:
    """Rows given up on, oldest first."""
    return list(session.exec(select(Outbox).where(col(Outbox.status) == "parked")
                             .order_by(col(Outbox.id))))


def requeue_parked(*, session: Session, now: datetime,
                   item_ids: Collection[int] | None = None) -> list[int]:
    """Give parked rows (all, or those of ``item_ids``) a fresh set of attempts, due now.

    A requeued card post takes along the parked rows of its mention (its updates and
    thread messages, which had waited for it). Returns the ids requeued; an id that is
    not parked is left alone.
    """
    query = select(Outbox).where(col(Outbox.status) == "parked")
    if item_ids is not None:
        given = col(Outbox.id).in_(list(item_ids))
        cards = session.exec(select(Outbox.mention_id).where(
            given, col(Outbox.kind) == POST_CARD, col(Outbox.status) == "parked",
            col(Outbox.mention_id).is_not(None))).all()
        query = query.where(or_(given, col(Outbox.mention_id).in_(list(cards))))
    done = []
    for item in session.exec(query.with_for_update()):
        item.status, item.attempts, item.next_attempt_at = "pending", 0, now
        item.lease_owner, item.lease_until = None, None
        # A fresh age too: the transient give-up rule counts from created_at.
        item.created_at = now
        session.add(item)
        done.append(item.id or 0)
    return sorted(done)


def get_post(*, session: Session, post_id: int) -> SlackPost | None:
    return session.get(SlackPost, post_id)


def posted_threads(*, session: Session, mention_id: int) -> list[tuple[str, str]]:
    """``(channel, ts)`` of every post a mention's card has had, current or not."""
    rows = session.exec(
        select(SlackPost.channel, SlackPost.ts)
        .where(SlackPost.mention_id == mention_id, col(SlackPost.ts).is_not(None))
        .order_by(col(SlackPost.id))
    )
    return [(channel, ts) for channel, ts in rows if ts is not None]


def current_post(*, session: Session, mention_id: int) -> SlackPost | None:
    return session.exec(
        select(SlackPost).where(SlackPost.mention_id == mention_id, col(SlackPost.is_current))
    ).first()


