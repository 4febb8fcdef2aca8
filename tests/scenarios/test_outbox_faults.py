"""The outbox loses nothing and posts nothing twice when Slack misbehaves."""

from __future__ import annotations

import time

from click.testing import CliRunner
from sqlmodel import Session, select

from bot.cli import main
from handlers.ids import CardAction, CardRef
from storage.tables import Outbox, SlackPost
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack


def mention(i: int, text: str = "my laptop won't boot since the update, help") -> dict:
    return {"source": "twitter", "id": f"f{i}", "author": f"user{i}", "text": text}


def test_429_retry_after_is_honoured_and_posts_once(bot: BotServer,
                                                    fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", 429, retry_after=1, times=2)
    bot.ingest(mention(1))
    [ok] = fake_slack.wait_for("chat.postMessage", timeout=15)
    attempts = fake_slack.all_calls("chat.postMessage")
    # Paused for Retry-After each time, not hammered.
    assert [c.status for c in attempts] == [429, 429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0 and ok.at - attempts[1].at >= 1.0
    time.sleep(0.3)
    assert len(fake_slack.ok_calls("chat.postMessage")) == 1


def test_server_errors_are_retried_and_nothing_is_lost(bot: BotServer,
                                                       fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", 500, seconds=2.5)
    for i in range(5):
        bot.ingest(mention(i))
    calls = fake_slack.wait_for("chat.postMessage", 5, timeout=30)
    assert sorted(c.params["metadata"]["event_payload"]["mention_id"] for c in calls) == [
        1, 2, 3, 4, 5]
    assert any(c.status == 500 for c in fake_slack.all_calls("chat.postMessage"))

    def all_marked() -> bool:
        with Session(bot.runtime.engine) as session:
            posts = session.exec(select(SlackPost)).all()
            return len(posts) == 5 and all(p.ts is not None for p in posts)

    eventually(all_marked)


def test_permanent_error_is_parked_without_blocking_other_channels(
        bot: BotServer, fake_slack: FakeSlack, database_url: str) -> None:
    fake_slack.fail("chat.postMessage", 200, error="channel_not_found", times=None,
                    seconds=60, channel="C0SUPPORT")
    bot.ingest(mention(1))  # a case -> support, whose channel is gone
    bot.ingest(mention(2, "Feature request: please add dark mode"))  # -> product
    [product] = fake_slack.wait_for("chat.postMessage", timeout=10)
    assert product.params["channel"] == "C0PRODUCT"

    def parked() -> list[Outbox]:
        with Session(bot.runtime.engine) as session:
            return session.exec(select(Outbox).where(Outbox.status == "parked")).all()

    [item] = eventually(parked, timeout=20)
    assert item.channel == "C0SUPPORT" and "channel_not_found" in (item.last_error or "")
    assert item.attempts == 3
    # ... and the team hears about it, in the triage channel (no alert channel configured).
    [alert] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"]
                                  == "C0TRIAGE")
    assert f"(id {item.id})" in alert.params["text"] and "C0SUPPORT" in alert.params["text"]
    assert f"`carebot outbox requeue {item.id}`" in alert.params["text"]

    # The operator invites the app to the channel, lists what is parked and sends it again.
    fake_slack.clear_faults()
    env = {"DATABASE_URL": database_url}
    listed = CliRunner().invoke(main, ["outbox", "list"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0
    [line] = listed.stdout.splitlines()
    assert line.startswith(f"{item.id}\tpost_card\tC0SUPPORT\tmention ")
    assert "3 attempts" in line and "channel_not_found" in line
    wrong = CliRunner().invoke(main, ["outbox", "requeue", str(item.id + 100)], env=env)
    assert wrong.exit_code == 1 and "requeued 0" in wrong.stdout
    done = CliRunner().invoke(main, ["outbox", "requeue", str(item.id)], env=env,
                              catch_exceptions=False)
    assert done.exit_code == 0 and "requeued 1 message(s)" in done.stdout
    [card] = fake_slack.wait_for("chat.postMessage", timeout=15,
                                 where=lambda c: c.params["channel"] == "C0SUPPORT")
    assert "CASE" in str(card.params["blocks"])
    assert eventually(lambda: not parked(), timeout=10)
    again = CliRunner().invoke(main, ["outbox", "list"], env=env, catch_exceptions=False)
    assert again.stdout.strip() == "nothing parked"


def test_slack_outage_during_claim_delays_the_card_update(bot: BotServer,
                                                          fake_slack: FakeSlack) -> None:
    mention_id = bot.ingest(mention(1)).json()["ids"][0]
    [post] = fake_slack.wait_for("chat.postMessage")
    fake_slack.fail("*", 500, seconds=2)
    response = bot.click(CardAction.CLAIM, CardRef(m=mention_id).dump(), user="U0ALICE",
                         channel="C0SUPPORT", message_ts=fake_slack.ts_of(post))
    assert response.status_code == 200
    [update] = fake_slack.wait_for("chat.update", timeout=20)
    assert "<@U0ALICE>" in str(update.params["blocks"])
    assert any(c.status == 500 for c in fake_slack.all_calls("chat.update"))


def test_requeuing_a_parked_card_takes_its_waiting_updates_along(engine) -> None:
    """Updates and thread messages wait for their card's ts; when they parked behind a
    parked card, requeuing the card by id brings them back too, and nothing else."""
    from datetime import UTC, datetime

    from storage import outbox
    from storage.tables import Mention

    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with Session(engine) as session:
        ids = []
        for n in (1, 2):
            row = Mention(source="test", external_id=str(n), author="sam", text=f"m{n}",
                          stage="routed")
            session.add(row)
            session.flush()
            ids.append(row.id)
        card = outbox.enqueue_post_card(session=session, mention_id=ids[0], channel="C0A",
                                        priority=5, now=now)
        outbox.enqueue_card_update(session=session, mention_id=ids[0], now=now)
        outbox.enqueue_message(session=session, channel="C0A", now=now, mention_id=ids[0],
                               payload={"channel": "C0A", outbox.THREAD_ON_CARD: True,
                                        "text": "note"})
        outbox.enqueue_message(session=session, channel="C0B", now=now, mention_id=ids[1],
                               payload={"channel": "C0B", "text": "other"})
        session.flush()
        rows = session.exec(select(Outbox)).all()
        for item in rows:
            item.status, item.attempts = "parked", 12
            session.add(item)
        session.commit()
        [card_row] = [r for r in rows if r.post_id == card.id and r.kind == outbox.POST_CARD]
        other = [r.id for r in rows if r.mention_id == ids[1]]
        mine = sorted(r.id for r in rows if r.mention_id == ids[0])

    with Session(engine) as session:
        assert outbox.requeue_parked(session=session, now=now, item_ids=[card_row.id]) == mine
        session.commit()
    with Session(engine) as session:
        status = {r.id: (r.status, r.attempts) for r in session.exec(select(Outbox))}
    assert all(status[i] == ("pending", 0) for i in mine) and len(mine) == 3
    assert [status[i] for i in other] == [("parked", 12)]
