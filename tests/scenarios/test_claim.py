"""Claim button: atomic claim, card updated in place, late clickers told who won."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlmodel import Session, select

from handlers.ids import CardAction, CardRef
from storage.tables import AuditLog, Engagement
from tests.harness.bot_server import BotServer
from tests.harness.fake_slack import Call, FakeSlack

CASE = {"source": "twitter", "id": "2001", "author": "dana_k",
        "text": "my laptop won't boot since the update, help"}


def posted_card(bot: BotServer, fake_slack: FakeSlack) -> tuple[int, Call]:
    mention_id = bot.ingest(CASE).json()["ids"][0]
    [call] = fake_slack.wait_for("chat.postMessage")
    return mention_id, call


def card_ts(fake_slack: FakeSlack, call: Call) -> str:
    # The ts the fake Slack gave this post (its answer), read back from chat.update later.
    return fake_slack.ts_of(call)


def test_claim_updates_the_card_in_place(bot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, post = posted_card(bot, fake_slack)
    ts = card_ts(fake_slack, post)
    response = bot.click(CardAction.CLAIM, CardRef(m=mention_id).dump(), user="U0ALICE",
                         channel="C0SUPPORT", message_ts=ts)
    assert response.status_code == 200

    [update] = fake_slack.wait_for("chat.update")
    assert update.params["channel"] == "C0SUPPORT" and update.params["ts"] == ts
    texts = [e["text"] for b in update.params["blocks"] if b["type"] == "context"
             for e in b["elements"]]
    assert any("Claimed by <@U0ALICE>" in t for t in texts)
    buttons = [e["action_id"] for b in update.params["blocks"] if b["type"] == "actions"
               for e in b["elements"]]
    assert buttons[0] == "card.unclaim"

    # A late clicker is told, privately, who has it; the card is not touched again.
    bot.click(CardAction.CLAIM, CardRef(m=mention_id).dump(), user="U0BOB",
              channel="C0SUPPORT", message_ts=ts)
    [eph] = fake_slack.wait_for("chat.postEphemeral")
    assert eph.params["user"] == "U0BOB"
    assert "Already claimed by <@U0ALICE>" in eph.params["text"]
    time.sleep(0.3)
    assert len(fake_slack.ok_calls("chat.update")) == 1


def test_claimer_can_unclaim_and_others_cannot(bot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, post = posted_card(bot, fake_slack)
    ts = card_ts(fake_slack, post)
    value = CardRef(m=mention_id).dump()
    bot.click(CardAction.CLAIM, value, user="U0ALICE", channel="C0SUPPORT", message_ts=ts)
    fake_slack.wait_for("chat.update", 1)

    bot.click(CardAction.UNCLAIM, value, user="U0BOB", channel="C0SUPPORT", message_ts=ts)
    [refusal] = fake_slack.wait_for("chat.postEphemeral")
    assert "Only <@U0ALICE> can unclaim" in refusal.params["text"]

    bot.click(CardAction.UNCLAIM, value, user="U0ALICE", channel="C0SUPPORT", message_ts=ts)
    updates = fake_slack.wait_for("chat.update", 2)
    buttons = [e["action_id"] for b in updates[-1].params["blocks"] if b["type"] == "actions"
               for e in b["elements"]]
    assert buttons[0] == "card.claim"
    with Session(bot.runtime.engine) as session:
        assert session.get(Engagement, mention_id).claimed_by is None
        actions = session.exec(select(AuditLog.action).where(AuditLog.mention_id == mention_id))
        assert [a for a in actions if a.endswith("claimed")] == ["claimed", "unclaimed"]


def test_twenty_concurrent_claims_have_one_winner(bot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, post = posted_card(bot, fake_slack)
    ts = card_ts(fake_slack, post)
    value = CardRef(m=mention_id).dump()
    users = [f"U0AGENT{i:02d}" for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(
            lambda u: bot.click(CardAction.CLAIM, value, user=u, channel="C0SUPPORT",
                                message_ts=ts), users))
    assert all(r.status_code == 200 for r in responses)

    losers = fake_slack.wait_for("chat.postEphemeral", 19, timeout=20)
    with Session(bot.runtime.engine) as session:
        winner = session.get(Engagement, mention_id).claimed_by
        claims = session.exec(select(AuditLog).where(AuditLog.mention_id == mention_id,
                                                     AuditLog.action == "claimed")).all()
    assert winner in users
    assert [c.actor for c in claims] == [winner]
    assert sorted(c.params["user"] for c in losers) == sorted(u for u in users if u != winner)
    assert all(f"Already claimed by <@{winner}>" in c.params["text"] for c in losers)
    [update] = fake_slack.wait_for("chat.update")
    assert f"<@{winner}>" in str(update.params["blocks"])


def test_forged_signature_gets_401_and_changes_nothing(bot: BotServer,
                                                       fake_slack: FakeSlack) -> None:
    mention_id, post = posted_card(bot, fake_slack)
    ts = card_ts(fake_slack, post)
    value = CardRef(m=mention_id).dump()
    forged = bot.click(CardAction.CLAIM, value, user="U0EVE", channel="C0SUPPORT",
                       message_ts=ts, secret="not-the-signing-secret")
    stale = bot.click(CardAction.CLAIM, value, user="U0EVE", channel="C0SUPPORT",
                      message_ts=ts, timestamp=int(time.time()) - 6 * 60)
    assert forged.status_code == 401
    assert stale.status_code == 401
    time.sleep(0.3)
    with Session(bot.runtime.engine) as session:
        assert session.get(Engagement, mention_id).claimed_by is None
    assert fake_slack.all_calls("chat.update") == []
    assert fake_slack.all_calls("chat.postEphemeral") == []


def test_button_from_unknown_card_gets_a_clear_message(bot: BotServer,
                                                       fake_slack: FakeSlack) -> None:
    bot.click(CardAction.CLAIM, "not json", user="U0ALICE", channel="C0SUPPORT",
              message_ts="1.2")
    bot.click(CardAction.CLAIM, CardRef(m=999999).dump(), user="U0ALICE", channel="C0SUPPORT",
              message_ts="1.2")
    calls = fake_slack.wait_for("chat.postEphemeral", 2)
    texts = sorted(c.params["text"] for c in calls)
    assert "unknown card" in texts[1]
    assert "Mention 999999 does not exist" in texts[0]
