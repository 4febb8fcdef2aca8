"""Audit of priority, SLA and automatic escalation: defects reproduced through the real bot.

Each test drives the bot over HTTP (signed Slack requests, ``/ingest``) against the
fake Slack, with the controllable clock, and ticks the real scheduler.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlmodel import Session, col, select

from bot import sla
from bot.config import CareConfig
from handlers.ids import CardAction, MoreAction
from storage import attention as state
from storage.tables import AuditLog, SlackPost
from tests.attention.conftest import ADMIN, T0, Clock
from tests.attention.test_watch_and_escalation import care
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack
from tests.workflow.helpers import choose, click

CASE = "my laptop won't boot since the update, help"


def actions_of(bot: BotServer, mention_id: int, action: str) -> list[AuditLog]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(AuditLog).where(
            AuditLog.mention_id == mention_id, AuditLog.action == action)
            .order_by(col(AuditLog.id))))


def attention_row(bot: BotServer, mention_id: int) -> state.MentionAttention | None:
    with Session(bot.runtime.engine) as session:
        return state.get(session=session, mention_id=mention_id)


def posted_card(bot: BotServer, fake_slack: FakeSlack, mention_id: int,
                contains: str) -> tuple[str, str]:
    """(channel, ts) of a mention's card, once carebot has recorded its ts."""
    [card] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("blocks")
                                 and contains in c.params["text"])
    ts = fake_slack.ts_of(card)

    def stored() -> bool:
        with Session(bot.runtime.engine) as session:
            return session.exec(select(SlackPost).where(
                SlackPost.mention_id == mention_id, SlackPost.ts == ts)).first() is not None

    eventually(stored)
    return str(card.params["channel"]), ts


def ingest_one(bot: BotServer, item: dict[str, Any]) -> int:
    return int(bot.ingest(item).json()["ids"][0])


# -- 1. "Mark noise" does not stop the SLA clock -----------------------------------------


def case_posted_a_minute_ago(bot: Any, clock: Clock, fake_slack: FakeSlack, external_id: str,
                             author: str) -> tuple[int, str, str]:
    """A case ingested at 08:59:40 whose card is posted; the clock then at 09:01."""
    clock.at(seconds=-20)
    mention_id = ingest_one(bot, {"source": "twitter", "id": external_id, "author": author,
                                  "text": CASE})
    channel, ts = posted_card(bot, fake_slack, mention_id, author)
    clock.at(minutes=1)
    return mention_id, channel, ts


def test_marking_a_case_noise_stops_its_sla_clock(make_bot, clock: Clock,
                                                  fake_slack: FakeSlack) -> None:
    """Staff mark a case card as noise at 09:01; the on-call group must not be paged at
    09:04 and 09:05 for "no first response" to a mention they already dismissed."""
    bot = make_bot()
    mention_id, channel, ts = case_posted_a_minute_ago(bot, clock, fake_slack, "n1", "spam_sam")
    choose(bot, MoreAction.NOISE, mention_id, user="U0BOB", channel=channel, ts=ts)
    eventually(lambda: actions_of(bot, mention_id, "reclassified"))

    for minute in range(1, 8):
        bot.runtime.scheduler.tick(clock.at(minutes=minute, seconds=30))

    assert actions_of(bot, mention_id, "sla_warned") == []
    assert actions_of(bot, mention_id, "sla_breached") == []
    row = attention_row(bot, mention_id)
    assert row is not None and row.answered_at is not None
    assert not [c for c in fake_slack.calls if c.method == "chat.postMessage"
                and "SLA" in str(c.params.get("text"))]


# -- 2. An automatic escalation that failed once is never retried ---------------------


def test_automatic_escalation_that_failed_once_is_retried_at_the_next_check(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    """The doc: "if that call fails unexpectedly the stamp is removed so the next check
    retries". The Social 911 path (an injected collaborator of the attention service)
    fails once with an unexpected error, e.g. a database hiccup; the next check must
    escalate the watched author's mention — exactly once."""
    bot = make_bot()
    care(bot, fake_slack, "watch add mvp @vip_val", user=ADMIN)
    attention = bot.runtime.services.attention
    real_escalate = attention.escalate
    failures: list[int] = []

    def flaky(mention_id: int, reason: str, actor: str = "carebot") -> object:
        if not failures:
            failures.append(mention_id)
            raise ConnectionError("database connection reset")
        return real_escalate(mention_id, reason, actor=actor)

    attention.escalate = flaky
    clock.at(seconds=-20)
    mention_id = ingest_one(bot, {"source": "twitter", "id": "e1", "author": "vip_val",
                                  "text": CASE})
    posted_card(bot, fake_slack, mention_id, "vip_val")

    for minute in range(1, 14):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))

    assert failures == [mention_id]
    assert len(actions_of(bot, mention_id, "auto_escalation_failed")) == 1
    [escalated] = actions_of(bot, mention_id, "escalated")  # the retry, once
    assert escalated.actor == "carebot" and escalated.detail["automatic"] is True
    # Failed at the 09:10 check, retried at 09:11 (the workflow stamps its own clock).
    assert T0 + timedelta(minutes=11) <= escalated.at < T0 + timedelta(minutes=12)
    assert [a.at for a in actions_of(bot, mention_id, "auto_escalated")] == [
        T0 + timedelta(minutes=10), T0 + timedelta(minutes=11)]


# -- 3. A CRM outage: routing waits once per author, then "tier unknown" for a day ----


class FakeCrm:
    """The CRM lookup hook on 127.0.0.1: answers from ``customers``, or hangs while down."""

    def __init__(self, customers: dict[str, dict[str, str]]) -> None:
        self.customers = customers
        self.down = threading.Event()
        self.requests: list[str] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                handle = parse_qs(urlparse(self.path).query)["handle"][0]
                crm.requests.append(handle)
                if crm.down.is_set():
                    threading.Event().wait(1.0)  # hang past carebot's timeout, then fail
                    self.send_response(503)
                    self.end_headers()
                    return
                body = crm.customers.get(handle)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if body:
                    self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lookup"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def crm() -> Iterator[FakeCrm]:
    fake = FakeCrm({"acme_anna": {"customer_id": "C-1", "name": "Acme", "tier": "platinum"}})
    yield fake
    fake.close()


def with_crm(config: CareConfig, url: str) -> CareConfig:
    data = config.model_dump(mode="json")
    data["attention"]["customer_lookup"] = {"url": url, "timeout_seconds": 0.3}
    return CareConfig.model_validate(data)


def test_crm_outage_costs_one_timeout_and_the_tier_is_known_once_it_is_back(
        make_bot, clock: Clock, fake_slack: FakeSlack, crm: FakeCrm,
        attention_config: CareConfig) -> None:
    bot = make_bot(with_crm(attention_config, crm.url))
    crm.down.set()
    authors = ["acme_anna", "bo_b", "cy_c", "di_d"]
    ids = bot.ingest([{"source": "twitter", "id": f"c{i}", "author": a, "text": CASE}
                      for i, a in enumerate(authors)]).json()["ids"]
    fake_slack.wait_for("chat.postMessage", len(authors), timeout=20,
                        where=lambda c: c.params.get("blocks"))
    # A CRM that hangs must not hold every card back by a timeout per author (here
    # 4 x 0.3 s; 64 x 3 s with the defaults, longer than a case's whole SLA).
    assert len(crm.requests) == 1
    row = attention_row(bot, ids[0])
    assert row is not None and row.tier is None  # unknown while the CRM is down

    # The CRM is back a few minutes later: Anna's next mention gets her tier, not
    # "unknown" for the 24 hours of refresh_hours.
    crm.down.clear()
    clock.at(minutes=5)
    again = ingest_one(bot, {"source": "twitter", "id": "c-again", "author": "acme_anna",
                             "text": "still broken, help"})
    eventually(lambda: attention_row(bot, again))
    row = attention_row(bot, again)
    assert row is not None and row.tier == "platinum" and row.entitled


# -- 4. Follow-up monitoring misses authors whose handle has a non-ASCII capital ------


@pytest.mark.parametrize("first, second", [("Øystein", "Øystein"), ("Émile_B", "@émile_b")])
def test_follow_up_of_an_author_with_a_non_ascii_capital_is_threaded(
        make_bot, clock: Clock, fake_slack: FakeSlack, first: str, second: str) -> None:
    """Danish, French, German, Russian names are common on App Store reviews, RSS and
    Discourse; the database's lower() folds ASCII only (SQLite; PostgreSQL under the C
    collation), so the same author was never recognised."""
    bot = make_bot()
    original = ingest_one(bot, {"source": "appstore", "id": "u1", "author": first,
                                "text": CASE})
    channel, ts = posted_card(bot, fake_slack, original, "won't boot")
    click(bot, CardAction.CLAIM, original, user="U0ALICE", channel=channel, ts=ts)
    eventually(lambda: actions_of(bot, original, "claimed"))

    clock.set(clock() + timedelta(days=1))
    later = ingest_one(bot, {"source": "appstore", "id": "u2", "author": second,
                             "text": "thanks, it boots again!"})
    [follow] = fake_slack.wait_for("chat.postMessage",
                                   where=lambda c: c.params.get("thread_ts") == ts)
    assert "Follow-up" in follow.params["text"] and "boots again" in follow.params["text"]
    row = attention_row(bot, later)
    assert row is not None and row.follow_up_of == original

    # Someone else with a similar-looking handle of the same length is not threaded.
    other = ingest_one(bot, {"source": "appstore", "id": "u3", "author": "X" + first[1:],
                             "text": "how do i change my password"})
    posted_card(bot, fake_slack, other, "change my password")
    row = attention_row(bot, other)
    assert row is not None and row.follow_up_of is None


# -- 5. Config values at their edges -------------------------------------------------


def with_sla_minutes(config: CareConfig, **minutes: int) -> CareConfig:
    data = config.model_dump(mode="json")
    data["sla_minutes"] = {**data["sla_minutes"], **minutes}
    return CareConfig.model_validate(data)


def test_a_huge_sla_target_does_not_stop_routing(make_bot, clock: Clock,
                                                 fake_slack: FakeSlack,
                                                 attention_config: CareConfig) -> None:
    """``rfe: 10000000000`` ("never, really") put the deadline past year 9999 (SQLite:
    OverflowError) or past the integer column (PostgreSQL: integer out of range):
    routing failed for the whole batch, so no card of it — not even a case — was
    ever posted."""
    bot = make_bot(with_sla_minutes(attention_config, rfe=10**10))
    ids = bot.ingest([
        {"source": "twitter", "id": "h1", "author": "idea_ida",
         "text": "feature request: please add dark mode"},
        {"source": "twitter", "id": "h2", "author": "dana_k", "text": CASE},
    ]).json()["ids"]
    fake_slack.wait_for("chat.postMessage", 2, where=lambda c: c.params.get("blocks"))
    rfe = attention_row(bot, ids[0])
    assert rfe is not None and rfe.sla_minutes == sla.MAX_TARGET_MINUTES
    assert rfe.due_at is not None and rfe.due_at.year > 6000
    for minute in range(1, 7):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    assert actions_of(bot, ids[0], "sla_warned") == []
    assert len(actions_of(bot, ids[1], "sla_breached")) == 1


@pytest.mark.parametrize("minutes", [0, -5])
def test_a_zero_or_negative_sla_target_is_refused_at_start(care_config: CareConfig,
                                                           minutes: int) -> None:
    data = care_config.model_dump(mode="json")
    data["sla_minutes"]["case"] = minutes
    with pytest.raises(ValueError, match="sla_minutes"):
        CareConfig.model_validate(data)
    data = care_config.model_dump(mode="json")
    data["attention"]["sla"]["tiers"] = {"gold": {"case": minutes}}
    with pytest.raises(ValueError, match="tiers"):
        CareConfig.model_validate(data)


# -- 6. A source-bound watch entry or customer link ignores the source's spelling -----


def test_watch_entry_for_a_source_matches_however_the_listener_spells_the_source(
        make_bot, fake_slack: FakeSlack) -> None:
    """`/care watch add mvp twitter:@vip_val` stores the source lower-cased (so does the
    customer CSV), but a listening tool that posts ``"source": "Twitter"`` was never
    matched: the MVP got a stranger's priority and no automatic escalation."""
    bot = make_bot()
    care(bot, fake_slack, "watch add mvp Twitter:@VIP_Val", user=ADMIN)
    watched = ingest_one(bot, {"source": "Twitter", "id": "s1", "author": "vip_val",
                               "text": CASE})
    elsewhere = ingest_one(bot, {"source": "reddit", "id": "s2", "author": "vip_val",
                                 "text": CASE})
    eventually(lambda: attention_row(bot, watched) and attention_row(bot, elsewhere))
    row = attention_row(bot, watched)
    assert row is not None and row.watch_lists == ["mvp"] and row.entitled
    other = attention_row(bot, elsewhere)  # the same handle on another source: not her
    assert other is not None and other.watch_lists == [] and not other.entitled


# -- 7. A reclassified mention keeps the SLA target of its old category ---------------


def test_a_case_reclassified_as_an_rfe_gets_the_rfe_target(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    from tests.workflow.test_reclassify import reclassify

    bot = make_bot()
    mention_id, channel, _ts = case_posted_a_minute_ago(bot, clock, fake_slack, "r1",
                                                        "idea_ida")
    assert reclassify(bot, mention_id, "rfe", "U0BOB", channel) == 200
    eventually(lambda: actions_of(bot, mention_id, "reclassified"))
    for minute in range(2, 7):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    # An RFE has 240 minutes (default config), not the 5 of the case it was taken for.
    assert actions_of(bot, mention_id, "sla_breached") == []
    row = attention_row(bot, mention_id)
    assert row is not None and row.sla_minutes == 240
