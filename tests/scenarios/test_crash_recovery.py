"""A worker that dies between calling Slack and recording the result loses nothing
and posts nothing twice: the next worker finds the message by its metadata."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.services.delivery import Delivery
from handlers.outbox import SlackDeliverer
from storage import outbox
from storage.tables import Outbox, SlackPost


def crashed_delivery(runtime, *, message: bool, to: str = "C0DIGEST") -> tuple[int, str]:
    """Post through a worker that 'dies' right after Slack answered."""
    services = runtime.services
    if message:
        with Session(runtime.engine) as session:
            outbox.enqueue_message(session=session, channel=to, now=runtime.clock(),
                                   payload={"channel": to, "text": "Daily digest"})
            session.commit()
    else:
        from bot.domain import MentionIn

        services.ingest([MentionIn(source="twitter", external_id="c1", author="dana",
                                   text="my laptop won't boot since the update, help")])
        services.route_pending(owner="w")
    doomed = SlackDeliverer(Delivery(services, owner="doomed"), runtime.deliverer.client)
    [task] = doomed.delivery.lease_due(limit=10)
    ts = doomed._call(task)  # reaches Slack ...
    assert ts is not None
    return task.id, ts  # ... and the process is SIGKILLed before recording it


@pytest.mark.parametrize(("message", "to"), [(False, "C0DIGEST"), (True, "C0DIGEST"),
                                             (True, "U0ESCALATOR")],
                         ids=["card", "digest", "dm-to-a-user"])
def test_interrupted_post_is_not_posted_twice(runtime, fake_slack, message: bool,
                                              to: str) -> None:
    """A message to a user id (the after-action review request) lands in the DM with
    them, whose history is read by its D… id: the user id has none."""
    outbox_id, first_ts = crashed_delivery(runtime, message=message, to=to)
    survivor = SlackDeliverer(Delivery(runtime.services, owner="survivor"),
                              runtime.deliverer.client)
    assert survivor.run_once() == 0  # still leased by the dead worker
    runtime.clock.now += timedelta(seconds=61)  # the dead worker's lease expires
    assert survivor.run_once() == 1

    assert len(fake_slack.ok_calls("chat.postMessage")) == 1
    assert len(fake_slack.ok_calls("conversations.history")) == 1
    with Session(runtime.engine) as session:
        item = session.get(Outbox, outbox_id)
        assert item.status == "sent"
        if not message:
            [post] = session.exec(select(SlackPost)).all()
            assert post.ts == first_ts


def test_interrupted_note_in_a_card_thread_is_not_posted_twice(runtime, fake_slack) -> None:
    """A reply in a card's thread is only in conversations.replies, not in the channel's
    history: the survivor looks there."""
    from bot.domain import MentionIn

    services = runtime.services
    services.ingest([MentionIn(source="twitter", external_id="c3", author="dana",
                               text="my laptop won't boot since the update, help")])
    services.route_pending(owner="w")
    assert runtime.deliverer.run_once() == 1  # the card, posted and recorded
    [card] = fake_slack.ok_calls("chat.postMessage")
    with Session(runtime.engine) as session:
        [post] = session.exec(select(SlackPost)).all()
        outbox.enqueue_message(session=session, channel=post.channel, now=runtime.clock(),
                               mention_id=post.mention_id,
                               payload={"channel": post.channel, outbox.THREAD_ON_CARD: True,
                                        "text": "Internal note: known bug"})
        session.commit()
    doomed = SlackDeliverer(Delivery(services, owner="doomed"), runtime.deliverer.client)
    [task] = doomed.delivery.lease_due(limit=10)
    assert doomed._call(task) is not None  # reaches Slack, then the worker dies

    survivor = SlackDeliverer(Delivery(services, owner="survivor"), runtime.deliverer.client)
    runtime.clock.now += timedelta(seconds=61)
    assert survivor.run_once() == 1
    notes = [c for c in fake_slack.ok_calls("chat.postMessage")
             if c.params.get("thread_ts") == fake_slack.ts_of(card)]
    assert len(notes) == 1
    assert fake_slack.ok_calls("conversations.replies")
    with Session(runtime.engine) as session:
        assert session.get(Outbox, task.id).status == "sent"


def test_interrupted_note_is_found_under_a_card_that_moved_since(runtime, fake_slack) -> None:
    """The worker died after replying in the card's thread, and the card was then
    reclassified to another channel: the survivor finds the reply in the old thread
    instead of posting it again under the new card."""
    from bot.domain import Category, MentionIn

    services = runtime.services
    [mention_id] = services.ingest([MentionIn(
        source="twitter", external_id="c4", author="dana",
        text="my laptop won't boot since the update, help")]).new_ids
    services.route_pending(owner="w")
    assert runtime.deliverer.run_once() == 1
    [old_card] = fake_slack.ok_calls("chat.postMessage")
    with Session(runtime.engine) as session:
        outbox.enqueue_message(session=session, channel=old_card.params["channel"],
                               now=runtime.clock(), mention_id=mention_id,
                               payload={"channel": old_card.params["channel"],
                                        outbox.THREAD_ON_CARD: True,
                                        "text": "Internal note: known bug"})
        session.commit()
    doomed = SlackDeliverer(Delivery(services, owner="doomed"), runtime.deliverer.client)
    [task] = doomed.delivery.lease_due(limit=10)
    assert doomed._call(task) is not None  # replies under the old card, then dies

    services.workflow.reclassify(mention_id=mention_id, user="U1", category=Category.RANT)
    survivor = SlackDeliverer(Delivery(services, owner="survivor"), runtime.deliverer.client)
    runtime.clock.now += timedelta(seconds=2)
    survivor.run_once()  # the new card goes out (the note is still leased by the dead one)
    new_card = next(c for c in fake_slack.ok_calls("chat.postMessage")
                    if c.params["channel"] != old_card.params["channel"])
    runtime.clock.now += timedelta(seconds=61)
    survivor.run_once()

    notes = [c for c in fake_slack.ok_calls("chat.postMessage")
             if c.params.get("text") == "Internal note: known bug"]
    assert [n.params["thread_ts"] for n in notes] == [fake_slack.ts_of(old_card)]
    searched = {c.params["ts"] for c in fake_slack.ok_calls("conversations.replies")}
    assert searched == {fake_slack.ts_of(new_card), fake_slack.ts_of(old_card)}
    with Session(runtime.engine) as session:
        assert session.get(Outbox, task.id).status == "sent"


def test_interrupted_before_slack_is_posted_once(runtime, fake_slack) -> None:
    """The other half: the worker died before its call reached Slack."""
    from bot.domain import MentionIn

    runtime.services.ingest([MentionIn(source="twitter", external_id="c2", author="dana",
                                       text="my laptop won't boot since the update, help")])
    runtime.services.route_pending(owner="w")
    doomed = Delivery(runtime.services, owner="doomed")
    assert len(doomed.lease_due(limit=10)) == 1  # leased, then killed before the call
    survivor = SlackDeliverer(Delivery(runtime.services, owner="survivor"),
                              runtime.deliverer.client)
    runtime.clock.now += timedelta(seconds=61)
    assert survivor.run_once() == 1
    [call] = fake_slack.ok_calls("chat.postMessage")
    assert call.params["channel"] == "C0SUPPORT"


def test_a_change_during_a_slow_card_update_is_never_lost(runtime) -> None:
    """A deliverer whose lease ran out while it was still sending an update (slow
    Slack, a long pause) must not swallow a change made meanwhile: the change gets an
    update of its own instead of reusing the row that rendered the old state."""
    from bot.domain import MentionIn

    services = runtime.services
    [mention_id] = services.ingest([MentionIn(
        source="twitter", external_id="s1", author="dana",
        text="my laptop won't boot since the update, help")]).new_ids
    services.route_pending(owner="w")
    assert runtime.deliverer.run_once() == 1  # the card is posted and its ts recorded

    def queue_update() -> int:
        with Session(runtime.engine) as session:
            queued = outbox.enqueue_card_update(session=session, mention_id=mention_id,
                                                now=runtime.clock())
            session.commit()
            return queued

    assert queue_update() == 1
    slow = Delivery(services, owner="slow")
    [task] = slow.lease_due(limit=10)  # renders the card as it is now ...
    runtime.clock.now += slow.lease + timedelta(seconds=1)  # ... and is still sending
    assert queue_update() == 1  # a state change now queues its own update
    assert slow.succeeded(task, ts=None)  # the slow send finishes, with the old state
    with Session(runtime.engine) as session:
        pending = session.exec(select(Outbox).where(
            Outbox.kind == outbox.UPDATE_CARD, Outbox.status == "pending")).all()
    assert len(pending) == 1 and pending[0].id != task.id
