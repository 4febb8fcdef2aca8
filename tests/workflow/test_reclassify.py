"""Reclassify and mark noise: the card moves, the old one points to it, feedback is kept;
two reclassifications at once, and claim against resolve, end in one consistent state."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, col, select

from handlers.ids import CardAction, ModalCallback, MoreAction
from storage.feedback import feedback_examples
from storage.tables import SlackPost
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack
from tests.workflow.conftest import Clock
from tests.workflow.helpers import (
    actions,
    buttons,
    card_updates,
    choose,
    click,
    engagement,
    mention,
    post_card,
    selected,
    submit,
    wait_card,
)

pytestmark = pytest.mark.usefixtures("paced")  # no exact durations asserted here


CASE = {"source": "twitter", "id": "5001", "author": "sam_b",
        "text": "my invoice is broken, help", "url": "https://twitter.com/sam_b/5001"}
CHANNEL_OF = {"rant": "C0COMMS", "lead": "C0SALES", "case": "C0SUPPORT"}


def reclassify(bot: BotServer, mention_id: int, category: str, user: str,
               channel: str) -> int:
    return submit(bot, ModalCallback.RECLASSIFY, {"category": selected(category)}, user=user,
                  mention_id=mention_id, channel=channel).status_code


def posts(bot: BotServer, mention_id: int) -> list[SlackPost]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(SlackPost).where(SlackPost.mention_id == mention_id)
                                 .order_by(col(SlackPost.id))))


def test_reclassify_moves_the_card_and_keeps_the_correction(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    assert channel == "C0SUPPORT"

    click(wbot, CardAction.RECLASSIFY, mention_id, user="U0ALICE", channel=channel, ts=ts)
    [opened] = fake_slack.wait_for("views.open")
    assert opened.params["view"]["callback_id"] == ModalCallback.RECLASSIFY
    assert reclassify(wbot, mention_id, "lead", "U0ALICE", channel) == 200

    [moved] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"]
                                  == "C0SALES")
    assert "LEAD" in json.dumps(moved.params["blocks"])
    old = wait_card(fake_slack, "C0SUPPORT", ts, "Moved to <#C0SALES>")
    assert buttons(old) == []  # the old card only points to the new one
    assert (mention(wbot, mention_id).category, mention(wbot, mention_id).channel) == (
        "lead", "C0SALES")
    with Session(wbot.runtime.engine) as session:
        assert feedback_examples(session) == [(CASE["text"], "lead")]

    # Mark noise from the new card's overflow: it stays there, shown as noise.
    new_ts = fake_slack.ts_of(moved)
    choose(wbot, MoreAction.NOISE, mention_id, user="U0BOB", channel="C0SALES", ts=new_ts)
    blocks = wait_card(fake_slack, "C0SALES", new_ts, "Marked as noise by <@U0BOB>")
    assert buttons(blocks)[0] == CardAction.RECLASSIFY
    assert mention(wbot, mention_id).category == "noise"
    with Session(wbot.runtime.engine) as session:
        assert feedback_examples(session) == [(CASE["text"], "noise")]
    assert [a for _, a in actions(wbot, mention_id) if a == "reclassified"] == [
        "reclassified", "reclassified"]

    # Reclassifying to what it already is changes nothing and says so.
    reclassify(wbot, mention_id, "noise", "U0BOB", "C0SALES")
    [said] = fake_slack.wait_for("chat.postEphemeral")
    assert "already *noise*" in said.params["text"]


def test_two_reclassifications_at_once_end_in_one_consistent_state(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = list(pool.map(lambda args: reclassify(wbot, mention_id, *args, channel),
                              [("rant", "U0ALICE"), ("lead", "U0BOB")]))
    assert codes == [200, 200]
    eventually(lambda: len([a for _, a in actions(wbot, mention_id)
                            if a == "reclassified"]) == 2)

    final = mention(wbot, mention_id)
    assert final.category in ("rant", "lead")
    final_channel = CHANNEL_OF[final.category]
    other = CHANNEL_OF["lead" if final.category == "rant" else "rant"]
    current = [p for p in posts(wbot, mention_id) if p.is_current]
    assert [p.channel for p in current] == [final.channel] == [final_channel]

    fake_slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == final_channel)
    wait_card(fake_slack, "C0SUPPORT", ts, f"Moved to <#{final_channel}>", clock=clock)
    # The loser's channel either never got the card, or its card points to the winner.
    for call in fake_slack.ok_calls("chat.postMessage"):
        if call.params["channel"] == other:
            wait_card(fake_slack, other, fake_slack.ts_of(call), f"Moved to <#{final_channel}>",
                      clock=clock)
    with Session(wbot.runtime.engine) as session:
        assert feedback_examples(session) == [(CASE["text"], final.category)]


def test_claim_against_resolve_ends_in_one_consistent_state(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    with ThreadPoolExecutor(max_workers=2) as pool:
        claim = pool.submit(click, wbot, CardAction.CLAIM, mention_id, user="U0ALICE",
                            channel=channel, ts=ts)
        resolve = pool.submit(click, wbot, CardAction.RESOLVE, mention_id, user="U0BOB",
                              channel=channel, ts=ts)
        assert claim.result().status_code == resolve.result().status_code == 200
    eventually(lambda: ("U0BOB", "resolved") in actions(wbot, mention_id))
    eng = engagement(wbot, mention_id)
    assert eng.resolved_by == "U0BOB" and eng.resolved_at is not None
    log = actions(wbot, mention_id)
    if eng.claimed_by == "U0ALICE":  # the claim came first, then Bob resolved it
        assert log.index(("U0ALICE", "claimed")) < log.index(("U0BOB", "resolved"))
    else:  # Bob resolved first (and so holds it); Alice is told
        assert eng.claimed_by == "U0BOB"
        assert ("U0ALICE", "claimed") not in log
        [told] = fake_slack.wait_for("chat.postEphemeral")
        assert told.params["user"] == "U0ALICE"
        assert "Already claimed by <@U0BOB>" in told.params["text"]
    blocks = wait_card(fake_slack, channel, ts, "Resolved by <@U0BOB>")
    assert f"Claimed by <@{eng.claimed_by}>" in json.dumps(blocks)
    assert card_updates(fake_slack, channel, ts)
