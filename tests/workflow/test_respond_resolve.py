"""Respond (copy-ready and through the source), resolve, reopen, and the exact times."""

from __future__ import annotations

import threading
from datetime import timedelta

from bot.errors import SourceUnavailable
from bot.services.replier import NoReplier, ReplyTarget
from handlers.ids import CardAction, ModalCallback
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack
from tests.workflow.conftest import START, Clock
from tests.workflow.helpers import (
    actions,
    buttons,
    click,
    engagement,
    post_card,
    submit,
    text,
    wait_card,
)

CASE = {"source": "twitter", "id": "9001", "author": "dana_k",
        "text": "my laptop won't boot since the update, help",
        "url": "https://twitter.com/dana_k/status/9001",
        "published_at": (START - timedelta(minutes=10)).isoformat()}


def test_copy_ready_reply_then_resolve_records_exact_times(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    wbot.runtime.services.workflow.replier = NoReplier()
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)

    clock.advance(minutes=3)
    click(wbot, CardAction.CLAIM, mention_id, user="U0ALICE", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Claimed by <@U0ALICE>")

    clock.advance(minutes=4)
    assert click(wbot, CardAction.RESPOND, mention_id, user="U0ALICE", channel=channel,
                 ts=ts).status_code == 200
    [opened] = fake_slack.wait_for("views.open")
    assert opened.params["trigger_id"]
    view = opened.params["view"]
    view = view if isinstance(view, dict) else __import__("json").loads(view)
    assert view["callback_id"] == ModalCallback.RESPOND
    assert "cannot post on twitter" in str(view["blocks"])

    response = submit(wbot, ModalCallback.RESPOND, {"reply": text("So sorry Dana — DM us?")},
                      user="U0ALICE", mention_id=mention_id, channel=channel)
    assert response.status_code == 200 and response.text == ""
    blocks = wait_card(fake_slack, channel, ts, "Copy-ready reply")
    assert "So sorry Dana — DM us?" in str(blocks)
    assert "card.confirm_responded" in buttons(blocks)
    assert engagement(wbot, mention_id).first_response_at is None  # not until confirmed

    clock.advance(minutes=2)
    click(wbot, CardAction.CONFIRM_RESPONDED, mention_id, user="U0ALICE", channel=channel,
          ts=ts)
    blocks = wait_card(fake_slack, channel, ts, "Responded by <@U0ALICE>")
    assert "card.confirm_responded" not in buttons(blocks)

    clock.advance(minutes=11)
    click(wbot, CardAction.RESOLVE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    blocks = wait_card(fake_slack, channel, ts, "Resolved by <@U0ALICE>")
    assert buttons(blocks)[0] == CardAction.REOPEN

    times = wbot.runtime.services.workflow.times(mention_id)
    assert times.to_claim == timedelta(minutes=3)
    assert times.first_response_from_arrival == timedelta(minutes=9)
    assert times.first_response_from_publication == timedelta(minutes=19)
    assert times.to_resolution == timedelta(minutes=20)
    eng = engagement(wbot, mention_id)
    assert (eng.responded_by, eng.resolved_by) == ("U0ALICE", "U0ALICE")
    workflow = {"claimed", "reply_draft", "responded", "resolved"}
    assert [a for _, a in actions(wbot, mention_id) if a in workflow] == [
        "claimed", "reply_draft", "responded", "resolved"]


class FlakyReplier:
    """Replies on twitter; the first send fails the way a source outage does."""

    def __init__(self) -> None:
        self.sent: list[tuple[ReplyTarget, str]] = []
        self.failures = 1
        self.tried = threading.Event()

    def capable(self, source: str) -> bool:
        return source == "twitter"

    def send(self, target: ReplyTarget, text: str) -> str | None:
        self.tried.set()
        if self.failures:
            self.failures -= 1
            raise SourceUnavailable("twitter answered 503")
        self.sent.append((target, text))
        return "tw-reply-77"


def test_reply_through_the_source_is_retried_and_timed_when_sent(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    replier = FlakyReplier()
    wbot.runtime.services.workflow.replier = replier
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)

    clock.advance(minutes=5)
    submit(wbot, ModalCallback.RESPOND, {"reply": text("On it!")}, user="U0BOB",
           mention_id=mention_id, channel=channel)
    assert replier.tried.wait(10)
    wait_card(fake_slack, channel, ts, "is being sent to twitter")
    assert engagement(wbot, mention_id).claimed_by == "U0BOB"  # responding claims it

    clock.advance(minutes=1)  # past the 5 s backoff
    wait_card(fake_slack, channel, ts, "Responded by <@U0BOB>")
    [(target, sent_text)] = replier.sent
    assert (target.external_id, target.source, sent_text) == ("9001", "twitter", "On it!")
    times = wbot.runtime.services.workflow.times(mention_id)
    assert times.first_response_from_arrival == timedelta(minutes=6)
    assert times.first_response_from_publication == timedelta(minutes=16)
    assert times.to_resolution is None


def test_reopen_is_for_admins_and_resolve_twice_is_refused(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    click(wbot, CardAction.RESOLVE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Resolved by <@U0ALICE>")
    assert engagement(wbot, mention_id).claimed_by == "U0ALICE"

    click(wbot, CardAction.RESOLVE, mention_id, user="U0BOB", channel=channel, ts=ts)
    click(wbot, CardAction.REOPEN, mention_id, user="U0BOB", channel=channel, ts=ts)
    refusals = fake_slack.wait_for("chat.postEphemeral", 2)
    texts = sorted(c.params["text"] for c in refusals)
    assert "Already resolved by <@U0ALICE>" in texts[0]
    assert "Only carebot admins can do that" in texts[1]
    assert all(c.params["user"] == "U0BOB" for c in refusals)

    clock.advance(minutes=1)
    click(wbot, CardAction.REOPEN, mention_id, user="U0LEAD", channel=channel, ts=ts)
    blocks = eventually(lambda: engagement(wbot, mention_id).resolved_at is None)
    assert blocks
    blocks = wait_card(fake_slack, channel, ts, "card.resolve")
    assert "Resolved by" not in str(blocks)
