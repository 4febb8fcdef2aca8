"""Idempotency at the Slack edge: redelivered events run once, double clicks act once.

Slack redelivers an event it got no timely 200 for, with the same ``event_id``
and ``X-Slack-Retry-Num``/``X-Slack-Retry-Reason`` headers — possibly to another
replica. A user may click a button twice before the card updates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, col, select

from bot.app import build_runtime
from bot.classify.factory import rules_classifier
from bot.config import CareConfig, load_settings
from handlers.ids import CardAction, CardRef
from storage.tables import AuditLog, SlackEvent
from tests.harness.bot_server import (
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    eventually,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import event_body

CASE = {"source": "twitter", "id": "idem-1", "author": "dana_k",
        "text": "my laptop won't boot since the update, help"}


def mention_event(ts: str) -> dict[str, str]:
    return {"type": "app_mention", "user": "U0ALICE", "text": "<@U0BOT> hi", "ts": ts,
            "channel": "C0SUPPORT", "event_ts": ts}


def replies_to(fake_slack: FakeSlack, ts: str) -> list[object]:
    return [c for c in fake_slack.ok_calls("chat.postMessage")
            if c.params.get("thread_ts") == ts]


def retry_headers(n: int, reason: str = "http_timeout") -> dict[str, str]:
    return {"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": reason}


@pytest.fixture
def second_replica(fake_slack: FakeSlack, database_url: str,
                   care_config: CareConfig) -> Iterator[BotServer]:
    """Another replica of the bot on the same database (HTTP mode behind a balancer)."""
    settings = load_settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url, database_url=database_url,
        _env_file=None,
    )
    runtime = build_runtime(settings, config=care_config,
                            classifier=rules_classifier(care_config), poll=0.2)
    server = start_bot_server(runtime, start_workers=False)
    yield server
    server.stop()
    runtime.engine.dispose()


def test_redelivered_event_is_processed_once(bot: BotServer, fake_slack: FakeSlack) -> None:
    body = event_body(mention_event("1700000000.000100"), event_id="Ev0IDEM1")
    first = bot.post_slack(body, content_type="application/json")
    assert first.status_code == 200
    eventually(lambda: replies_to(fake_slack, "1700000000.000100"))
    for n, reason in [(1, "http_timeout"), (2, "http_error"), (3, "http_timeout")]:
        retry = bot.post_slack(body, content_type="application/json",
                               headers=retry_headers(n, reason))
        assert retry.status_code == 200  # acknowledged, so Slack stops retrying

    # A new event (new id, same content) is handled: the middleware keys on event_id.
    again = event_body(mention_event("1700000000.000100"), event_id="Ev0IDEM2")
    assert bot.post_slack(again, content_type="application/json").status_code == 200
    eventually(lambda: len(replies_to(fake_slack, "1700000000.000100")) == 2)
    with Session(bot.runtime.engine) as session:
        seen = session.exec(select(SlackEvent.event_id)
                            .where(col(SlackEvent.event_id).in_(["Ev0IDEM1", "Ev0IDEM2"])))
        assert sorted(seen) == ["Ev0IDEM1", "Ev0IDEM2"]


def test_redelivery_to_another_replica_is_dropped_too(
        bot: BotServer, second_replica: BotServer, fake_slack: FakeSlack) -> None:
    body = event_body(mention_event("1700000000.000200"), event_id="Ev0IDEM3")
    assert bot.post_slack(body, content_type="application/json").status_code == 200
    eventually(lambda: replies_to(fake_slack, "1700000000.000200"))
    retry = second_replica.post_slack(body, content_type="application/json",
                                      headers=retry_headers(1))
    assert retry.status_code == 200
    # The second replica still handles new events (it is not just refusing everything).
    fresh = event_body(mention_event("1700000000.000300"), event_id="Ev0IDEM4")
    assert second_replica.post_slack(fresh, content_type="application/json").status_code == 200
    eventually(lambda: replies_to(fake_slack, "1700000000.000300"))
    assert len(replies_to(fake_slack, "1700000000.000200")) == 1


def test_concurrent_redeliveries_run_the_listener_once(bot: BotServer,
                                                       fake_slack: FakeSlack) -> None:
    body = event_body(mention_event("1700000000.000400"), event_id="Ev0IDEM5")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda n: bot.post_slack(body, content_type="application/json",
                                     headers=retry_headers(n) if n else None), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    marker = event_body(mention_event("1700000000.000500"), event_id="Ev0IDEM6")
    bot.post_slack(marker, content_type="application/json")
    eventually(lambda: replies_to(fake_slack, "1700000000.000500"))
    assert len(replies_to(fake_slack, "1700000000.000400")) == 1


def test_double_clicked_claim_acts_once(bot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id = bot.ingest(CASE).json()["ids"][0]
    [post] = fake_slack.wait_for("chat.postMessage")
    ts = fake_slack.ts_of(post)
    value = CardRef(m=mention_id).dump()

    def click(_: int) -> int:
        return bot.click(CardAction.CLAIM, value, user="U0ALICE", channel="C0SUPPORT",
                         message_ts=ts).status_code

    with ThreadPoolExecutor(2) as pool:  # two clicks at once...
        assert list(pool.map(click, range(2))) == [200, 200]
    assert click(2) == 200  # ...and one more after
    [update] = fake_slack.wait_for("chat.update")
    assert update.params["ts"] == ts

    # Someone else's click afterwards is refused: by then the double clicks were handled.
    bot.click(CardAction.CLAIM, value, user="U0BOB", channel="C0SUPPORT", message_ts=ts)
    [refusal] = fake_slack.wait_for("chat.postEphemeral")
    assert "Already claimed by <@U0ALICE>" in refusal.params["text"]
    with Session(bot.runtime.engine) as session:
        claims = session.exec(select(AuditLog).where(AuditLog.mention_id == mention_id,
                                                     AuditLog.action == "claimed")).all()
    assert [c.actor for c in claims] == ["U0ALICE"]
    assert len(fake_slack.ok_calls("chat.update")) == 1
    # The clicker got no "already claimed" message about their own claim.
    assert all(c.params["user"] != "U0ALICE" for c in fake_slack.ok_calls("chat.postEphemeral"))


def test_retry_headers_do_not_bypass_the_signature(bot: BotServer,
                                                   fake_slack: FakeSlack) -> None:
    body = json.dumps(json.loads(event_body(mention_event("1700000000.000600"),
                                            event_id="Ev0IDEM7")))
    answer = bot.post_slack(body, content_type="application/json", secret="not-the-secret",
                            headers=retry_headers(1))
    assert answer.status_code == 401
    with Session(bot.runtime.engine) as session:
        assert session.get(SlackEvent, "Ev0IDEM7") is None
