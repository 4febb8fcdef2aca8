"""Defects found auditing the Slack surface, reproduced through the real HTTP endpoint:
signed requests to the bot, a fake Slack Web API recording what the user would see."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.config import CareConfig
from handlers.ids import CardAction, ModalCallback, MoreAction
from storage.tables import Outbox, SlackPost
from storage.workflow_tables import Reply
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import command_body, event_body
from tests.workflow.conftest import BotFactory, Clock
from tests.workflow.helpers import (
    choose,
    click,
    mention,
    post_card,
    selected,
    submit,
    text,
    wait_card,
)

pytestmark = pytest.mark.usefixtures("paced")  # no exact durations asserted here


UNSURE = {"source": "twitter", "id": "7001", "author": "lee_p",
          "text": "buy cheap followers now at spam dot example"}
CASE = {"source": "twitter", "id": "7002", "author": "ana_r",
        "text": "my invoice is broken, help", "url": "https://twitter.com/ana_r/7002"}
RANT = {"source": "twitter", "id": "7003", "author": "max_t",
        "text": "worst company ever, you broke everything again, help"}


def care(bot: BotServer, fake: FakeSlack, words: str, *, user: str,
         channel: str = "C0SUPPORT", hook: str = "audit") -> str:
    """Send ``/care <words>``; the response_url method the bot answers on."""
    method = f"response/T0FAKE/1/{hook}"
    response = bot.post_slack(command_body("/care", words, user=user, channel=channel,
                                           response_url=f"{fake.url}{method}"))
    assert response.status_code == 200
    return method


# -- marking a triage card's noise guess as noise ------------------------------------


def test_mark_noise_decides_a_triage_card_whose_guess_was_noise(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, UNSURE)
    assert channel == "C0TRIAGE"  # nothing matched: an unsure noise guess, for a person
    assert mention(wbot, mention_id).category == "noise"

    choose(wbot, MoreAction.NOISE, mention_id, user="U0BOB", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Marked as noise by <@U0BOB>")
    assert not any("already" in c.params.get("text", "")
                   for c in fake_slack.all_calls("chat.postEphemeral"))


# -- staff thread replies that Slack sends with a subtype -----------------------------


def thread_event(bot: BotServer, event_id: str, **event: object) -> int:
    bot.runtime.services.clock.advance(seconds=3)  # type: ignore[attr-defined]
    body = event_body({"type": "message", **event}, event_id=event_id)
    return bot.post_slack(body, content_type="application/json").status_code


def test_thread_replies_also_sent_to_the_channel_or_with_a_file_are_recorded(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    workflow = wbot.runtime.services.workflow
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    eventually(lambda: card_ts_recorded(wbot, channel, ts))  # the thread is known as a card's
    # "Also send to #channel" arrives as subtype thread_broadcast; a reply with an
    # attachment as file_share. Both are a person's reply in the card's thread.
    assert thread_event(wbot, "EvA1", subtype="thread_broadcast", channel=channel,
                        user="U0BOB", text="Escalating to billing", ts="1800000000.000100",
                        thread_ts=ts) == 200
    assert thread_event(wbot, "EvA2", subtype="file_share", channel=channel, user="U0CAROL",
                        text="screenshot of their invoice", ts="1800000000.000200",
                        thread_ts=ts, files=[{"id": "F1"}]) == 200
    # Not replies by a person: ignored as before.
    thread_event(wbot, "EvA3", subtype="message_changed", channel=channel,
                 ts="1800000000.000300", thread_ts=ts)
    thread_event(wbot, "EvA4", subtype="bot_message", channel=channel, bot_id="B0OTHER",
                 text="bot says hi", ts="1800000000.000400", thread_ts=ts)
    eventually(lambda: len(workflow.notes(mention_id)) >= 2)
    assert sorted(workflow.notes(mention_id)) == [  # events are handled concurrently
        ("thread", "U0BOB", "Escalating to billing"),
        ("thread", "U0CAROL", "screenshot of their invoice"),
    ]


def card_ts_recorded(bot: BotServer, channel: str, ts: str) -> bool:
    with Session(bot.runtime.engine) as session:
        return session.exec(select(SlackPost).where(SlackPost.channel == channel,
                                                    SlackPost.ts == ts)).first() is not None


# -- /care digest send <department> ---------------------------------------------------


@pytest.fixture
def manager_bot(make_bot: BotFactory, workflow_config: CareConfig) -> BotServer:
    data = workflow_config.model_dump(mode="json")
    data["stats"] = {
        "managers": ["U0MANAGER"],
        "digests": {"daily_enabled": False, "weekly_enabled": False,
                    "daily_channel": "C0LEADS", "daily_per_department": True,
                    "weekly_channel": "C0LEADERSHIP"},
        "spikes": {"enabled": False},
    }
    return make_bot(CareConfig.model_validate(data))


def test_digest_send_for_one_department_sends_only_that_department(
        manager_bot: BotServer, fake_slack: FakeSlack) -> None:
    hook = care(manager_bot, fake_slack, "digest send daily support", user="U0MANAGER")
    [answer] = fake_slack.wait_for(hook)
    assert answer.params["text"] == "Sent the daily digest to <#C0SUPPORT> (1 message)."
    assert queued_channels(manager_bot) == ["C0SUPPORT"]


def queued_channels(bot: BotServer) -> list[str]:
    with Session(bot.runtime.engine) as session:
        return sorted({row.channel for row in session.exec(select(Outbox))})


def test_weekly_digest_has_no_department(manager_bot: BotServer,
                                         fake_slack: FakeSlack) -> None:
    care(manager_bot, fake_slack, "digest send weekly support", user="U0MANAGER")
    [refusal] = fake_slack.wait_for("chat.postEphemeral")
    assert "Usage" in refusal.params["text"] or "department" in refusal.params["text"]
    assert queued_channels(manager_bot) == []


# -- errors of a slash command where the bot cannot post ephemerals --------------------


def test_a_refused_command_in_a_dm_still_gets_an_answer(
        manager_bot: BotServer, fake_slack: FakeSlack) -> None:
    # A DM between two people (or a channel the bot is not in): Slack refuses the
    # bot's chat.postEphemeral there, but the command's response_url always works.
    fake_slack.fail("chat.postEphemeral", 200, error="channel_not_found", times=5)
    hook = care(manager_bot, fake_slack, "stats lastyear", user="U0MANAGER",
                channel="D0SOMEONE")
    [answer] = fake_slack.wait_for(hook)
    assert "is neither a range" in answer.params["text"]
    assert answer.params.get("response_type") == "ephemeral"


# -- /care reviews counts reviews, not lines -------------------------------------------


def test_reviews_count_reviews_whose_answers_span_lines(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    fake_slack.usergroups["S0ESCALATORS"] = ["U0ESCALATOR"]
    mention_id, channel, ts = post_card(wbot, fake_slack, RANT)
    click(wbot, CardAction.ESCALATE, mention_id, user="U0ESCALATOR", channel=channel, ts=ts)
    submit(wbot, ModalCallback.ESCALATE, {"severity": selected("sev2"),
                                          "reason": text("going viral")},
           user="U0ESCALATOR", mention_id=mention_id, channel=channel)
    wait_card(fake_slack, channel, ts, "Escalated (SEV2)")
    click(wbot, CardAction.RESOLVE, mention_id, user="U0ESCALATOR", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Resolved by <@U0ESCALATOR>")
    escalation = wbot.runtime.services.workflow.escalations
    [(esc_id,)] = _escalation_ids(wbot)
    escalation.record_review(escalation_id=esc_id, user="U0ESCALATOR",
                             outcome="Calmed down.\nRefund issued.\nThey thanked us.",
                             without_intervention="It would have trended <@channel>.\n```Badly.",
                             could_be_better=None, appropriate=True)
    hook = care(wbot, fake_slack, "reviews", user="U0LEAD")
    [answer] = fake_slack.wait_for(hook)
    assert answer.params["text"].startswith("*1 after-action review(s)*")
    # The answers are shown as typed: escaped for mrkdwn (no ping), and a ``` typed in
    # an answer does not end the code block early.
    shown = answer.params["text"].split("```", 1)[1]
    assert shown.endswith("```") and "```" not in shown[:-3]
    assert "&lt;@channel&gt;" in shown and "<@channel>" not in shown


def _escalation_ids(bot: BotServer) -> list[tuple[int]]:
    from storage.workflow_tables import Escalation

    with Session(bot.runtime.engine) as session:
        return [(row.id,) for row in session.exec(select(Escalation))]  # type: ignore[misc]


# -- a Respond modal submitted twice ---------------------------------------------------


class CountingReplier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def capable(self, source: str) -> bool:
        return source == "twitter"

    def send(self, target: object, text: str) -> str | None:
        self.sent.append(text)
        return f"tw-{len(self.sent)}"


def test_the_same_respond_submission_twice_sends_one_reply(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    replier = CountingReplier()
    wbot.runtime.services.workflow.replier = replier
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    for _ in range(2):  # the same view submitted twice (a retry, a double click)
        response = submit(wbot, ModalCallback.RESPOND, {"reply": text("Sorry Ana, DM us?")},
                          user="U0ALICE", mention_id=mention_id, channel=channel)
        assert response.status_code == 200
    wait_card(fake_slack, channel, ts, "Responded by <@U0ALICE>")
    with Session(wbot.runtime.engine) as session:
        replies = session.exec(select(Reply)).all()
    assert len(replies) == 1
    assert replier.sent == ["Sorry Ana, DM us?"]


def test_the_same_note_submitted_twice_is_one_note(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    """Bolt runs each submission in its own worker, so the two of a double click are
    applied in sequence here, as the mention's row lock makes them in the bot."""
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    workflow = wbot.runtime.services.workflow
    for _ in range(2):  # a double click on Save
        workflow.add_note(mention_id=mention_id, user="U0ALICE", text="Known bug ENG-12")
    assert workflow.notes(mention_id) == [("note", "U0ALICE", "Known bug ENG-12")]
    # Someone else's, and then the same one again after theirs, are notes of their own.
    workflow.add_note(mention_id=mention_id, user="U0BOB", text="Known bug ENG-12")
    workflow.add_note(mention_id=mention_id, user="U0ALICE", text=" Known bug ENG-12 ")
    assert [author for _k, author, _t in workflow.notes(mention_id)] == [
        "U0ALICE", "U0BOB", "U0ALICE"]
    def notes_posted() -> list[object]:
        clock.advance(seconds=2)  # Slack's pacing (1 message/s per channel) runs on it
        return [c for c in fake_slack.ok_calls("chat.postMessage") if c.params.get("thread_ts")]

    posted = eventually(lambda: len(notes_posted()) >= 3 and notes_posted())
    assert len(posted) == 3
    assert all("Known bug ENG-12" in c.params["text"] for c in posted)

    def card_counts_three() -> bool:
        clock.advance(seconds=2)
        return any("3 internal notes in the thread" in str(c.params.get("blocks"))
                   for c in fake_slack.ok_calls("chat.update"))

    eventually(card_counts_three)


# -- App Home: "My claimed mentions" after resolving one ---------------------------------


def open_home(bot: BotServer, fake: FakeSlack, user: str, n: int) -> dict[str, object]:
    import json

    body = event_body({"type": "app_home_opened", "user": user, "channel": "D0HOME",
                       "tab": "home"}, event_id=f"EvAuditHome{n}")
    assert bot.post_slack(body, content_type="application/json").status_code == 200
    view = fake.wait_for("views.publish", n)[n - 1].params["view"]
    return json.loads(view) if isinstance(view, str) else view  # type: ignore[no-any-return]


def test_a_resolved_mention_leaves_my_claimed_mentions(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    click(wbot, CardAction.CLAIM, mention_id, user="U0ALICE", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Claimed by <@U0ALICE>")
    home = open_home(wbot, fake_slack, "U0ALICE", 1)
    assert f"mine-{mention_id}" in {b.get("block_id") for b in home["blocks"]}  # type: ignore[attr-defined, union-attr]

    click(wbot, CardAction.RESOLVE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Resolved by <@U0ALICE>")
    home = open_home(wbot, fake_slack, "U0ALICE", 2)
    block_ids = {b.get("block_id") for b in home["blocks"]}  # type: ignore[attr-defined, union-attr]
    assert f"mine-{mention_id}" not in block_ids
    assert "mine-empty" in block_ids


def test_care_queue_does_not_count_what_was_marked_noise(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    choose(wbot, MoreAction.NOISE, mention_id, user="U0BOB", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Marked as noise by <@U0BOB>")
    hook = care(wbot, fake_slack, "queue", user="U0BOB")
    [answer] = fake_slack.wait_for(hook)
    assert answer.params["text"] == "*Unclaimed mentions*\nnone — all clear"
