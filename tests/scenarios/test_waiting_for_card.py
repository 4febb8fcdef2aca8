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


def test_waiting_updates_park_with_their_card_and_come_back_with_it(runtime, fake_slack):
    rt = runtime
    rt.services.ingest([MentionIn(source="twitter", external_id="w1", author="dana", text=TEXT)])
    rt.services.route_pending(owner="w")
    fake_slack.fail("chat.postMessage", 500, seconds=600)  # Slack keeps failing posts
    with Session(rt.engine, expire_on_commit=False) as session:
        [card] = session.exec(select(Outbox)).all()
        outbox.enqueue_card_update(session=session, mention_id=card.mention_id, now=rt.clock())
        post = outbox.current_post(session=session, mention_id=card.mention_id)
        outbox.enqueue_message(session=session, channel=post.channel, now=rt.clock(),
                               mention_id=card.mention_id,
                               payload={"channel": post.channel, outbox.THREAD_ON_CARD: True,
                                        "text": "SLA warning"})
        session.commit()

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
