"""Watch lists through /care watch, and entitled escalation: once, and only when entitled."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from storage import attention as state
from storage.tables import AuditLog
from tests.attention.conftest import ADMIN, T0, Clock
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import Call, FakeSlack
from tests.harness.signing import command_body

TEXT = "my laptop won't boot since the update, help"


def care(bot: BotServer, fake_slack: FakeSlack, text: str, *, user: str) -> str:
    """Run ``/care <text>``; return what carebot answered (response_url or ephemeral)."""
    before = len(fake_slack.calls)
    url = f"{fake_slack.url}response/{before}"
    assert bot.post_slack(command_body("/care", text, user=user,
                                       response_url=url)).status_code == 200

    def answered() -> list[Call]:
        return [c for c in fake_slack.calls[before:]
                if c.method.startswith("response/") or c.method == "chat.postEphemeral"]

    return str(eventually(answered)[-1].params.get("text"))


def auto_escalations(bot: BotServer, mention_id: int) -> list[AuditLog]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.mention_id == mention_id,
                                                        AuditLog.action == "auto_escalated")))


def test_watch_add_is_role_checked_and_listed(make_bot, fake_slack: FakeSlack) -> None:
    bot = make_bot()
    refused = care(bot, fake_slack, "watch add mvp @vip_val", user="U0RANDOM")
    assert "Only watch-list admins" in refused
    assert "vip_val" not in care(bot, fake_slack, "watch list", user="U0RANDOM")

    added = care(bot, fake_slack, "watch add mvp @VIP_Val", user=ADMIN)
    assert "now on *mvp*" in added
    care(bot, fake_slack, "watch add influencer twitter:@loud_lou", user=ADMIN)
    again = care(bot, fake_slack, "watch add mvp vip_val", user=ADMIN)
    assert "already" in again
    listing = care(bot, fake_slack, "watch list", user="U0RANDOM")
    assert "*mvp*: @vip_val" in listing and "twitter:@loud_lou" in listing
    bad = care(bot, fake_slack, "watch add no/such @x", user=ADMIN)
    assert "not a list name" in bad

    assert "is off" in care(bot, fake_slack, "watch remove mvp @vip_val", user=ADMIN)
    assert "vip_val" not in care(bot, fake_slack, "watch list", user=ADMIN)


def test_watched_author_is_escalated_once_and_unwatched_never(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    bot = make_bot()
    care(bot, fake_slack, "watch add mvp @vip_val", user=ADMIN)
    clock.at(seconds=-20)  # arrive a little before 09:00
    watched = bot.ingest({"source": "twitter", "id": "7001", "author": "vip_val",
                          "text": TEXT}).json()["ids"][0]
    unwatched = bot.ingest({"source": "twitter", "id": "7002", "author": "nobody_ned",
                            "text": TEXT}).json()["ids"][0]
    fake_slack.wait_for("chat.postMessage", 2, where=lambda c: c.params.get("blocks")
                        and c.params["channel"] == "C0SUPPORT")
    with Session(bot.runtime.engine) as session:
        w = state.get(session=session, mention_id=watched)
        u = state.get(session=session, mention_id=unwatched)
        assert w is not None and u is not None
        assert w.entitled and w.watch_lists == ["mvp"] and not u.entitled
        assert w.priority > u.priority  # same text; only who the author is differs

    # Escalation is due 10 minutes after arrival; tick every minute for 20 minutes.
    for minute in range(0, 21):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
        if minute == 9:
            assert auto_escalations(bot, watched) == []

    [escalation] = auto_escalations(bot, watched)
    assert escalation.at == T0 + timedelta(minutes=10)
    assert "mvp" in escalation.detail["reason"]
    assert auto_escalations(bot, unwatched) == []
    with Session(bot.runtime.engine) as session:
        escalated = session.exec(select(AuditLog).where(
            AuditLog.action == "escalated")).all()
    if hasattr(bot.runtime.services, "workflow"):
        # The workflow's Social 911 path: one automatic escalation, by carebot.
        assert [(e.mention_id, e.actor, e.detail.get("automatic")) for e in escalated] == [
            (watched, "carebot", True)]
    else:
        [post] = fake_slack.wait_for("chat.postMessage",
                                     where=lambda c: "Social 911" in str(c.params.get("text")))
        assert "vip_val" in post.params["text"]


def test_a_watched_authors_praise_is_never_escalated(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    """Social 911 is for a key customer who needs help: an MVP with a big following who
    thanks the brand scores over the escalation bar on reach alone, yet is not
    escalated; the same author's problem, arriving with it, is."""
    bot = make_bot()
    care(bot, fake_slack, "watch add mvp @vip_val", user=ADMIN)
    clock.at(seconds=-20)
    rave, case = bot.ingest([
        {"source": "twitter", "id": "7101", "author": "vip_val", "author_reach": 150_000,
         "text": "love the new update, thank you so much, best app ever"},
        {"source": "twitter", "id": "7102", "author": "vip_val", "author_reach": 150_000,
         "text": TEXT}]).json()["ids"]
    fake_slack.wait_for("chat.postMessage", 2, where=lambda c: c.params.get("blocks"))
    with Session(bot.runtime.engine) as session:
        row = state.get(session=session, mention_id=rave)
        assert row is not None and row.entitled
        assert row.priority >= bot.runtime.services.config.attention.sla.escalation_min_priority
    for minute in range(0, 21):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    assert len(auto_escalations(bot, case)) == 1
    assert auto_escalations(bot, rave) == []


def test_an_author_watched_after_they_wrote_is_escalated_if_left_waiting(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    """A manager puts a key customer on a watch list five minutes after their problem
    came in: that waiting mention takes the new priority and entitlement at once, and
    Social 911 fires when it has waited the escalation time, as if watched before."""
    bot = make_bot()
    clock.at(seconds=-20)
    waiting = bot.ingest({"source": "twitter", "id": "7201", "author": "Late_Lou",
                          "text": TEXT}).json()["ids"][0]
    fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("blocks"))
    for minute in range(0, 5):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    with Session(bot.runtime.engine) as session:
        before = state.get(session=session, mention_id=waiting)
        assert before is not None and not before.entitled
        priority_before = before.priority
    clock.at(minutes=5)
    care(bot, fake_slack, "watch add mvp @late_lou", user=ADMIN)
    with Session(bot.runtime.engine) as session:
        after = state.get(session=session, mention_id=waiting)
        assert after is not None and after.entitled and after.watch_lists == ["mvp"]
        assert after.priority > priority_before
        assert after.sla_started_at == before.sla_started_at  # the clock did not restart
    for minute in range(5, 21):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    [escalation] = auto_escalations(bot, waiting)
    assert escalation.at == T0 + timedelta(minutes=10)


def test_an_escalation_stamped_by_a_process_that_died_is_done_once_later(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    """The stamp that makes one replica alone escalate commits before the escalation
    runs; a replica killed between the two left the stamp and no escalation, and the
    key customer was never escalated. Five minutes on, the check takes it up again."""
    bot = make_bot()
    care(bot, fake_slack, "watch add mvp @vip_val", user=ADMIN)
    clock.at(seconds=-20)
    watched = bot.ingest({"source": "twitter", "id": "7101", "author": "vip_val",
                          "text": TEXT}).json()["ids"][0]
    fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("blocks")
                        and c.params["channel"] == "C0SUPPORT")
    # What the dead replica left: the stamp at 09:10, committed; nothing else.
    with Session(bot.runtime.engine) as session:
        assert state.try_stamp(session=session, mention_id=watched, stamp="escalated_at",
                               now=T0 + timedelta(minutes=10))
        session.commit()

    def escalated() -> list[AuditLog]:
        with Session(bot.runtime.engine) as session:
            return list(session.exec(select(AuditLog).where(
                AuditLog.mention_id == watched,
                AuditLog.action.in_(("escalated", "auto_escalation_posted")))))  # type: ignore[attr-defined]

    for minute in range(10, 15):  # another replica may still be escalating it
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    assert escalated() == [] and auto_escalations(bot, watched) == []
    for minute in range(15, 22):
        bot.runtime.scheduler.tick(clock.at(minutes=minute))
    assert len(escalated()) == 1
    [redo] = auto_escalations(bot, watched)
    assert redo.at == T0 + timedelta(minutes=15)
