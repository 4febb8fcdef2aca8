"""Notes into the card's thread, thread replies as internal discussion, star / KB flags,
and conversion scores averaged per agent, department and period."""

from __future__ import annotations

import json

import pytest

from bot.services.conversions import conversion_score, conversion_stats
from handlers.ids import CardAction, ModalCallback, MoreAction
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import Call, FakeSlack
from tests.harness.signing import command_body, event_body
from tests.workflow.conftest import Clock
from tests.workflow.helpers import choose, click, post_card, selected, submit, text, wait_card

pytestmark = pytest.mark.usefixtures("paced")  # no exact durations asserted here


CASE = {"source": "twitter", "id": "3001", "author": "kim_l", "text": "app crashes, help"}


def thread_message(bot: BotServer, event_id: str, **event: str) -> int:
    bot.runtime.services.clock.advance(seconds=3)  # type: ignore[attr-defined]
    body = event_body({"type": "message", **event}, event_id=event_id)
    return bot.post_slack(body, content_type="application/json").status_code


def test_notes_and_thread_replies_are_internal(wbot: BotServer, fake_slack: FakeSlack) -> None:
    workflow = wbot.runtime.services.workflow
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)

    click(wbot, CardAction.NOTE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    [opened] = fake_slack.wait_for("views.open")
    assert opened.params["view"]["callback_id"] == ModalCallback.NOTE
    submit(wbot, ModalCallback.NOTE, {"note": text("Known bug ENG-12, fix on Friday")},
           user="U0ALICE", mention_id=mention_id, channel=channel)
    [note] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("thread_ts"))
    assert (note.params["channel"], note.params["thread_ts"]) == (channel, ts)
    assert "Known bug ENG-12" in note.params["text"]
    wait_card(fake_slack, channel, ts, "1 internal note in the thread")

    assert thread_message(wbot, "Ev1", channel=channel, user="U0BOB", text="I'll DM them",
                          ts="1800000000.000200", thread_ts=ts) == 200
    wait_card(fake_slack, channel, ts, "2 internal notes in the thread")
    # Redelivered, our own bot post, an edit, and a thread that is not a card: ignored.
    thread_message(wbot, "Ev1", channel=channel, user="U0BOB", text="I'll DM them",
                   ts="1800000000.000200", thread_ts=ts)
    thread_message(wbot, "Ev2", channel=channel, bot_id="B0BOT", text="note echo",
                   ts="1800000000.000300", thread_ts=ts)
    thread_message(wbot, "Ev3", channel=channel, user="U0BOB", subtype="message_changed",
                   ts="1800000000.000400", thread_ts=ts)
    thread_message(wbot, "Ev4", channel=channel, user="U0BOB", text="other thread",
                   ts="1800000000.000500", thread_ts="1699999999.000001")
    thread_message(wbot, "Ev5", channel=channel, user="U0CAROL", text="same here",
                   ts="1800000000.000600", thread_ts=ts)
    eventually(lambda: len(workflow.notes(mention_id)) == 3)
    assert workflow.notes(mention_id) == [
        ("note", "U0ALICE", "Known bug ENG-12, fix on Friday"),
        ("thread", "U0BOB", "I'll DM them"),
        ("thread", "U0CAROL", "same here"),
    ]
    # Internal discussion never goes to the customer: nothing was queued for the source.
    from sqlmodel import Session, select

    from storage.workflow_tables import Dispatch, Reply
    with Session(wbot.runtime.engine) as session:
        assert session.exec(select(Dispatch)).all() == []
        assert session.exec(select(Reply)).all() == []


def test_a_note_on_a_card_still_being_posted_lands_in_its_thread(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    # The card appears in Slack a moment before carebot records its ts: a note
    # submitted in that moment waits for the ts instead of being refused.
    fake_slack.stall("chat.postMessage", 1.5)
    mention_id = wbot.ingest({**CASE, "id": "3002"}).json()["ids"][0]
    eventually(lambda: not fake_slack.faults)  # the card's post is on its way
    response = submit(wbot, ModalCallback.NOTE, {"note": text("Seen this before, ENG-12")},
                      user="U0ALICE", mention_id=mention_id, channel="C0SUPPORT")
    assert response.status_code == 200
    [card] = fake_slack.wait_for("chat.postMessage", where=lambda c: not c.params.get("thread_ts"))

    def note_posted() -> list[Call]:
        clock.advance(seconds=2)  # the note's retries are due on the bot's clock
        return [c for c in fake_slack.ok_calls("chat.postMessage")
                if c.params.get("thread_ts") and "ENG-12" in c.params["text"]]

    [note] = eventually(note_posted)
    assert (note.params["channel"], note.params["thread_ts"]) == ("C0SUPPORT",
                                                                  fake_slack.ts_of(card))
    assert note.params["text"].startswith(":memo: *Internal note* from <@U0ALICE>")
    assert not fake_slack.ok_calls("chat.postEphemeral")  # nothing was refused


def test_a_note_follows_its_card_when_the_card_moves_before_the_note_is_sent(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    assert channel == "C0SUPPORT"
    fake_slack.fail("chat.postMessage", 500, seconds=60, channel="C0SUPPORT")  # until cleared
    submit(wbot, ModalCallback.NOTE, {"note": text("Refund promised, ENG-7")}, user="U0ALICE",
           mention_id=mention_id, channel=channel)

    def note_calls(ok: bool) -> list[Call]:
        calls = fake_slack.ok_calls if ok else fake_slack.all_calls
        return [c for c in calls("chat.postMessage") if "ENG-7" in str(c.params.get("text"))]

    eventually(lambda: note_calls(ok=False))  # its first attempt failed
    assert not note_calls(ok=True)
    submit(wbot, ModalCallback.RECLASSIFY, {"category": selected("lead")}, user="U0BOB",
           mention_id=mention_id, channel=channel)
    [moved] = fake_slack.wait_for("chat.postMessage",
                                  where=lambda c: c.params["channel"] == "C0SALES")
    fake_slack.clear_faults()

    def note_sent() -> list[Call]:
        clock.advance(seconds=5)  # the note's retry is due on the bot's clock
        return note_calls(ok=True)

    [note] = eventually(note_sent)
    assert (note.params["channel"], note.params["thread_ts"]) == ("C0SALES",
                                                                  fake_slack.ts_of(moved))


def test_star_and_kb_candidate_toggle_from_the_overflow(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    workflow = wbot.runtime.services.workflow
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    choose(wbot, MoreAction.STAR, mention_id, user="U0ALICE", channel=channel, ts=ts)
    blocks = wait_card(fake_slack, channel, ts, "Starred by <@U0ALICE>")
    overflow = [e for b in blocks if b["type"] == "actions" for e in b["elements"]
                if e["type"] == "overflow"][0]
    assert "Unstar" in json.dumps(overflow["options"])
    assert len(overflow["options"]) <= 5
    choose(wbot, MoreAction.KB, mention_id, user="U0BOB", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "KB candidate (<@U0BOB>)")
    assert workflow.flagged("star") == [mention_id] and workflow.flagged("kb") == [mention_id]

    choose(wbot, MoreAction.STAR, mention_id, user="U0ALICE", channel=channel, ts=ts)
    eventually(lambda: workflow.flagged("star") == [])
    assert workflow.flagged("kb") == [mention_id]


def test_conversion_scores_and_their_averages(wbot: BotServer, fake_slack: FakeSlack,
                                              clock: Clock) -> None:
    services = wbot.runtime.services
    rant = {"source": "twitter", "id": "3002", "author": "lou",
            "text": "worst support ever, terrible, never again"}
    a, ca, ta = post_card(wbot, fake_slack, CASE)
    b, cb, tb = post_card(wbot, fake_slack, {**CASE, "id": "3003", "author": "max"})
    c, cc, tc = post_card(wbot, fake_slack, rant)
    assert (ca, cc) == ("C0SUPPORT", "C0COMMS")
    for mid, ch, ts, user in ((a, ca, ta, "U0ALICE"), (b, cb, tb, "U0ALICE"),
                              (c, cc, tc, "U0BOB")):
        click(wbot, CardAction.CLAIM, mid, user=user, channel=ch, ts=ts)
    eventually(lambda: all(services.card_view(m).claimed_by for m in (a, b, c)))

    choose(wbot, MoreAction.CONVERSION, a, user="U0ALICE", channel=ca, ts=ta)
    [opened] = fake_slack.wait_for("views.open")
    assert opened.params["view"]["callback_id"] == ModalCallback.CONVERSION

    def tag(mid: int, ch: str, before: str, after: str, user: str) -> None:
        submit(wbot, ModalCallback.CONVERSION, {"before": selected(before),
                                                "after": selected(after)},
               user=user, mention_id=mid, channel=ch)

    tag(a, ca, "negative", "positive", "U0LEAD")  # tagged by a lead, credited to Alice
    wait_card(fake_slack, ca, ta, "Sentiment negative → positive (+2), tagged by <@U0LEAD>")
    tag(b, cb, "negative", "neutral", "U0ALICE")
    wait_card(fake_slack, cb, tb, "negative → neutral (+1)")
    clock.advance(days=7)
    tag(c, cc, "neutral", "negative", "U0BOB")
    wait_card(fake_slack, cc, tc, "neutral → negative (-1)")

    by_agent = {s.key: (s.count, s.average) for s in conversion_stats(services, by="agent")}
    assert by_agent == {"U0ALICE": (2, 1.5), "U0BOB": (1, -1.0)}
    by_dept = {s.key: (s.count, s.total) for s in conversion_stats(services, by="department")}
    assert by_dept == {"support": (2, 3), "comms": (1, -1)}
    by_week = [(s.key, s.average) for s in conversion_stats(services, by="period")]
    assert by_week == [("2026-03-02", 1.5), ("2026-03-09", -1.0)]
    assert conversion_score("negative", "positive") > conversion_score("negative", "neutral")

    # Re-tagging replaces the engagement's conversion rather than adding one.
    tag(b, cb, "negative", "positive", "U0ALICE")
    wait_card(fake_slack, cb, tb, "negative → positive (+2)")
    by_agent = {s.key: (s.count, s.average) for s in conversion_stats(services, by="agent")}
    assert by_agent["U0ALICE"] == (2, 2.0)

    # The same numbers in Slack, privately.
    answer = care(wbot, fake_slack, "conversions agent", user="U0ALICE")
    assert "<@U0ALICE>: *+2.00* over 2 engagement(s)" in answer
    assert "<@U0BOB>: *-1.00* over 1 engagement(s)" in answer
    assert "Only carebot admins" in care(wbot, fake_slack, "reviews", user="U0ALICE")
    assert "0 after-action review(s)" in care(wbot, fake_slack, "reviews", user="U0LEAD")


def care(bot: BotServer, fake: FakeSlack, text: str, *, user: str) -> str:
    """Run ``/care <text>``; what carebot answered on the response_url."""
    before = len(fake.calls)
    url = f"{fake.url}response/wf{before}"
    assert bot.post_slack(command_body("/care", text, user=user,
                                       response_url=url)).status_code == 200
    calls = eventually(lambda: [c for c in fake.calls[before:]
                                if c.method == f"response/wf{before}"])
    return str(calls[-1].params.get("text"))
