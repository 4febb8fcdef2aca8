"""SLA warning at 75 % and breach at 100 % of the target: at the right minute, once."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from scheduler.attention_jobs import SLA_JOB
from scheduler.core import JobScheduler
from scheduler.jobs import register_jobs
from storage import attention as state
from storage import jobs
from storage.tables import AuditLog, SlackPost
from tests.attention.conftest import ALERTS, ONCALL, T0, Clock
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack

CASE = {"source": "twitter", "id": "5001", "author": "dana_k",
        "text": "my laptop won't boot since the update, help"}


def audit_times(bot: BotServer, mention_id: int, action: str) -> list[datetime]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(AuditLog.at).where(
            AuditLog.mention_id == mention_id, AuditLog.action == action)
            .order_by(col(AuditLog.id))))


def post_case(bot: BotServer, fake_slack: FakeSlack, clock: Clock) -> tuple[int, str]:
    """Ingest a case just before 09:00 (its SLA clock starts at ingestion)."""
    clock.at(seconds=-20)
    mention_id = bot.ingest(CASE).json()["ids"][0]
    [card] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("blocks"))

    def ts_recorded() -> bool:
        # SLA messages thread under the card's recorded ts: wait until the
        # deliverer has stored it, not only until Slack answered.
        with Session(bot.runtime.engine) as session:
            return session.exec(select(SlackPost.ts).where(
                SlackPost.mention_id == mention_id)).first() is not None

    eventually(ts_recorded)
    return mention_id, fake_slack.ts_of(card)


def in_thread(fake_slack: FakeSlack, ts: str, count: int) -> list:
    return fake_slack.wait_for("chat.postMessage", count,
                               where=lambda c: c.params.get("thread_ts") == ts)


def test_warning_at_75_percent_and_breach_at_100_percent_fire_once(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    bot = make_bot()
    mention_id, ts = post_case(bot, fake_slack, clock)  # a case: 5-minute target from 09:00

    # The check runs every minute; tick twice a minute for eight minutes.
    for seconds in range(0, 8 * 60 + 1, 30):
        bot.runtime.scheduler.tick(clock.at(seconds=seconds))
        if seconds == 3 * 60 + 30:  # 3:30 is before 75 % (3:45): nothing yet
            assert audit_times(bot, mention_id, "sla_warned") == []

    # The clock started on arrival, a few seconds before 09:00 (see post_case): 75 % of
    # five minutes is reached before 09:04 and 100 % before 09:05, so the checks of
    # 09:04 and 09:05 fire them — and nothing fires again.
    with Session(bot.runtime.engine) as session:
        started = state.get(session=session, mention_id=mention_id).sla_started_at
    # (T0 + ..., not clock.at(): setting the clock back would stall the outbox.)
    assert T0 + timedelta(minutes=3) < started + timedelta(minutes=3.75) <= T0 + timedelta(
        minutes=4)
    assert audit_times(bot, mention_id, "sla_warned") == [T0 + timedelta(minutes=4)]
    assert audit_times(bot, mention_id, "sla_breached") == [T0 + timedelta(minutes=5)]

    warning, breach = in_thread(fake_slack, ts, 2)
    assert "SLA warning" in warning.params["text"]
    assert f"<!subteam^{ONCALL}>" in warning.params["text"]
    assert warning.params["channel"] == "C0SUPPORT"
    assert "SLA breached" in breach.params["text"]
    [alert] = fake_slack.wait_for("chat.postMessage",
                                  where=lambda c: c.params["channel"] == ALERTS)
    assert "SLA breached" in alert.params["text"] and "dana_k" in alert.params["text"]
    # The card itself shows the breach.
    eventually(lambda: any("SLA breached" in str(c.params.get("blocks"))
                           for c in fake_slack.ok_calls("chat.update")))


def test_answered_mention_neither_warns_nor_breaches(make_bot, clock: Clock,
                                                     fake_slack: FakeSlack) -> None:
    bot = make_bot()
    mention_id, _ts = post_case(bot, fake_slack, clock)
    clock.at(minutes=2)
    assert bot.runtime.services.attention.record_first_response(mention_id=mention_id)
    for minute in range(0, 10):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    assert audit_times(bot, mention_id, "sla_warned") == []
    assert audit_times(bot, mention_id, "sla_breached") == []


def test_two_schedulers_on_one_database_run_the_check_once_per_period(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    bot = make_bot()
    mention_id, ts = post_case(bot, fake_slack, clock)
    services = bot.runtime.services
    replicas = [bot.runtime.scheduler,
                JobScheduler(bot.runtime.engine, owner="replica-2", clock=clock)]
    register_jobs(replicas[1], services)

    for seconds in range(0, 7 * 60, 20):
        clock.at(seconds=seconds)
        threads = [threading.Thread(target=r.tick) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    with Session(bot.runtime.engine) as session:
        runs = jobs.runs(session=session, job=SLA_JOB)
    fire_times = [r.fire_time for r in runs]
    assert fire_times == sorted(set(fire_times))  # one run per period, no duplicates
    assert len(fire_times) == 7  # 09:00 .. 09:06
    assert {r.owner for r in runs} <= {replicas[0].owner, "replica-2"}
    assert len(audit_times(bot, mention_id, "sla_warned")) == 1
    assert len(audit_times(bot, mention_id, "sla_breached")) == 1
    in_thread(fake_slack, ts, 2)


def test_warning_queued_before_the_card_is_posted_lands_in_its_thread(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    """Slack fails the support channel until after the warning is due: the warning
    waits for the card and then replies in its thread (the ts is resolved at delivery)."""
    bot = make_bot()
    fake_slack.fail("chat.postMessage", 500, times=10_000, channel="C0SUPPORT")
    clock.at(seconds=-20)
    mention_id = bot.ingest(CASE).json()["ids"][0]

    def routed() -> bool:  # no card to wait for: wait for the pipeline to start its SLA clock
        with Session(bot.runtime.engine) as session:
            return state.get(session=session, mention_id=mention_id) is not None

    eventually(routed)
    for seconds in range(0, 4 * 60 + 1, 30):
        bot.runtime.scheduler.tick(clock.at(seconds=seconds))
    assert audit_times(bot, mention_id, "sla_warned") == [T0 + timedelta(minutes=4)]
    assert not [c for c in fake_slack.ok_calls("chat.postMessage")
                if c.params["channel"] == "C0SUPPORT"]

    fake_slack.clear_faults()
    clock.at(minutes=6)  # past every retry's backoff (no scheduler tick: no breach)
    [card] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("blocks"))
    clock.at(minutes=8)
    [warning] = in_thread(fake_slack, fake_slack.ts_of(card), 1)
    assert "SLA warning" in warning.params["text"]
    assert "carebot_thread_on_card" not in warning.params
    top_level = [c for c in fake_slack.ok_calls("chat.postMessage")
                 if c.params["channel"] == "C0SUPPORT" and not c.params.get("thread_ts")]
    assert top_level == [card]
