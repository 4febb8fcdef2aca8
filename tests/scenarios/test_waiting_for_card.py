"""An update or thread message waits for its card's ts without spending attempts, and
parks with the card (one alert) instead of an hour later on its own."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from bot.domain import MentionIn
from bot.services.delivery import PARK_ALERT
from storage import outbox
from storage.tables import Outbox

TEXT = "my laptop won't boot since the update, help"


def rows(rt) -> list[Outbox]:
    with Session(rt.engine, expire_on_commit=False) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)))


def park_alerts(rt) -> list[Outbox]:
    return [r for r in rows(rt)
            if (r.payload.get("metadata") or {}).get("event_type") == PARK_ALERT]


def queue_update_and_note(rt) -> Outbox:
    """Queue a card update and an SLA note in the card's thread behind the card's post."""
    with Session(rt.engine, expire_on_commit=False) as session:
        [card] = session.exec(select(Outbox)).all()
        outbox.enqueue_card_update(session=session, mention_id=card.mention_id, now=rt.clock())
        post = outbox.current_post(session=session, mention_id=card.mention_id)
        outbox.enqueue_message(session=session, channel=post.channel, now=rt.clock(),
                               mention_id=card.mention_id,
                               payload={"channel": post.channel, outbox.THREAD_ON_CARD: True,
                                        "text": "SLA warning"})
        session.commit()
    return card


def test_waiting_updates_park_with_their_card_and_come_back_with_it(runtime, fake_slack):
    rt = runtime
    rt.services.ingest([MentionIn(source="twitter", external_id="w1", author="dana", text=TEXT)])
    rt.services.route_pending(owner="w")
    fake_slack.fail("chat.postMessage", 500, seconds=600)  # Slack keeps failing posts
    card = queue_update_and_note(rt)

    waiting = {}
    for _ in range(20):  # 100 minutes of retries: the card gives up after 12 and an hour
        rt.clock.now += timedelta(minutes=5)
        rt.deliverer.run_once()
        waiting = {r.id: r for r in rows(rt) if r.id != card.id and r.mention_id}
        if rows(rt)[0].status == "parked" and all(r.status == "parked"
                                                  for r in waiting.values()):
            break
    [card_row, *_rest] = rows(rt)
    assert card_row.status == "parked"
    assert len(waiting) == 2
    for row in waiting.values():
        assert (row.status, row.last_error) == ("parked", "its card's post is parked")
        assert row.attempts <= 1  # waiting spent no attempts
    assert len(park_alerts(rt)) == 1  # one alert, for the card

    from bot.services.delivery import requeue_parked

    assert requeue_parked(rt.services, [card_row.id]) == sorted([card_row.id, *waiting])
    fake_slack.clear_faults()
    for _ in range(6):
        rt.clock.now += timedelta(seconds=61)
        rt.deliverer.run_once()
    posted = [c for c in fake_slack.ok_calls("chat.postMessage") if c.params["channel"]
              == "C0SUPPORT"]
    [card_call] = [c for c in posted if not c.params.get("thread_ts")]
    [note] = [c for c in posted if c.params.get("thread_ts") == fake_slack.ts_of(card_call)]
    assert note.params["text"] == "SLA warning"
    assert fake_slack.ok_calls("chat.update")
    assert {r.status for r in rows(rt) if r.mention_id} == {"sent"}


def test_waiting_updates_go_out_as_soon_as_their_card_does(runtime, fake_slack):
    """Once the card has its ts, what waited for it is due at once, not after its
    backoff (up to a minute): both when it waited in the same batch as the card and
    when it was sleeping out its backoff while the card went out."""
    rt = runtime
    rt.services.ingest([MentionIn(source="twitter", external_id="w2", author="eli", text=TEXT)])
    rt.services.route_pending(owner="w")
    fake_slack.fail("chat.postMessage", 500, times=2, channel="C0SUPPORT")
    card = queue_update_and_note(rt)

    rt.clock.now += timedelta(minutes=10)
    rt.deliverer.run_once()  # the card fails; the update and the note wait 60 s
    waiting = [r for r in rows(rt) if r.id != card.id]
    assert {r.last_error for r in waiting} == {outbox.WAITING_FOR_CARD}
    assert all(r.next_attempt_at >= rt.clock() + timedelta(seconds=59) for r in waiting)
    for _ in range(10):  # the card's own backoff is seconds: it goes out first
        rt.clock.now += timedelta(seconds=2)
        rt.deliverer.run_once()
        if rows(rt)[0].status == "sent":
            break
    assert rows(rt)[0].status == "sent"
    assert all(r.status == "pending" for r in rows(rt)[1:])
    rt.deliverer.run_once()  # the clock has not moved: no backoff left to sleep out
    assert {r.status for r in rows(rt) if r.mention_id} == {"sent"}
    [card_call] = [c for c in fake_slack.ok_calls("chat.postMessage")
                   if not c.params.get("thread_ts")]
    [note] = [c for c in fake_slack.ok_calls("chat.postMessage")
              if c.params.get("thread_ts") == fake_slack.ts_of(card_call)]
    assert note.params["text"] == "SLA warning"
    assert [c.params["ts"] for c in fake_slack.ok_calls("chat.update")] == [
        fake_slack.ts_of(card_call)]


def test_an_update_leased_with_its_card_in_one_batch_is_due_again_at_once(runtime,
                                                                          fake_slack):
    rt = runtime
    rt.services.ingest([MentionIn(source="twitter", external_id="w3", author="fay", text=TEXT)])
    rt.services.route_pending(owner="w")
    with Session(rt.engine, expire_on_commit=False) as session:
        [card] = session.exec(select(Outbox)).all()
        outbox.enqueue_card_update(session=session, mention_id=card.mention_id, now=rt.clock())
        session.commit()
    rt.clock.now += timedelta(minutes=10)
    rt.deliverer.run_once()  # card and update leased together; the card goes first
    card_row, update_row = rows(rt)
    assert card_row.status == "sent"
    # The update saw no ts when it was leased: it is put back due now, not in 60 s.
    assert (update_row.status, update_row.last_error) == ("pending", outbox.WAITING_FOR_CARD)
    assert update_row.next_attempt_at <= rt.clock()
    rt.deliverer.run_once()
    assert rows(rt)[1].status == "sent"
