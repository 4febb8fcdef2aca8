"""Mention in -> classified card in the department channel, over real HTTP."""

from __future__ import annotations

import time

from tests.harness.bot_server import BotServer
from tests.harness.fake_slack import FakeSlack

LAPTOP = {"source": "twitter", "id": "1001", "author": "dana_k", "author_reach": 312,
          "url": "https://x.com/dana_k/status/1001",
          "text": "my laptop won't boot since the update, help"}


def test_ingested_mention_is_posted_to_support(bot: BotServer, fake_slack: FakeSlack) -> None:
    response = bot.ingest(LAPTOP)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1

    [call] = fake_slack.wait_for("chat.postMessage")
    assert call.params["channel"] == "C0SUPPORT"
    assert call.token == "xoxb-test-0000-token"
    assert call.params["unfurl_links"] in (False, "0", "false")
    assert call.params["unfurl_media"] in (False, "0", "false")
    blocks = call.params["blocks"]
    text = " ".join(b.get("text", {}).get("text", "") for b in blocks if b["type"] == "section")
    assert "CASE" in text and "Support" in text
    assert "my laptop won't boot since the update, help" in text
    assert "dana_k" in text
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["action_id"] == "card.claim"
    assert call.params["metadata"]["event_payload"]["mention_id"] == response.json()["ids"][0]


def test_same_mention_twice_is_posted_once(bot: BotServer, fake_slack: FakeSlack) -> None:
    first = bot.ingest(LAPTOP)
    second = bot.ingest([LAPTOP, {**LAPTOP, "text": "edited text, same id"}])
    assert first.json()["accepted"] == 1
    assert second.json() == {"accepted": 0, "duplicates": 2, "ids": []}
    fake_slack.wait_for("chat.postMessage")
    time.sleep(0.5)  # give a wrongly queued second post time to show up
    assert len(fake_slack.ok_calls("chat.postMessage")) == 1


def test_ingest_needs_the_bearer_token(bot: BotServer, fake_slack: FakeSlack) -> None:
    assert bot.ingest(LAPTOP, token=None).status_code == 401
    wrong = bot.ingest(LAPTOP, token="not-the-token")
    assert wrong.status_code == 401
    assert "test-ingest-token" not in wrong.text
    time.sleep(0.3)
    assert fake_slack.all_calls("chat.postMessage") == []


def test_bad_bodies_get_field_level_422(bot: BotServer) -> None:
    missing = bot.ingest({"source": "twitter", "id": "1"})
    assert missing.status_code == 422
    locs = {d["loc"] for d in missing.json()["detail"]}
    assert locs == {"text", "author"}

    in_list = bot.ingest([LAPTOP, {**LAPTOP, "id": "2", "url": "javascript:alert(1)"}])
    assert in_list.status_code == 422
    assert in_list.json()["detail"][0]["loc"] == "1.url"

    for raw in (b"{not json", b"42", b"[]"):
        bad = bot.ingest(raw)
        assert bad.status_code == 422, raw
        assert bad.json()["detail"][0]["loc"] == "body"

    # Nothing from the rejected batch was stored: the valid mention in it is not posted.
    assert bot.ingest(LAPTOP).json()["accepted"] == 1


def test_a_handle_sent_with_its_at_sign_is_shown_with_one(
    bot: BotServer, fake_slack: FakeSlack
) -> None:
    response = bot.ingest({**LAPTOP, "id": "1002", "author": "@jana@mastodon.social"})
    assert response.status_code == 202, response.text
    [call] = fake_slack.wait_for("chat.postMessage")
    text = " ".join(b.get("text", {}).get("text", "") for b in call.params["blocks"]
                    if b["type"] == "section")
    assert "*@jana@mastodon.social*" in text and "@@" not in text

    only_at = bot.ingest({**LAPTOP, "id": "1003", "author": " @ "})
    assert only_at.status_code == 422
    assert only_at.json()["detail"][0]["loc"] == "author"


def test_uncertain_mention_goes_to_triage(bot: BotServer, fake_slack: FakeSlack) -> None:
    bot.ingest({"source": "twitter", "id": "77", "author": "tom_w",
                "text": "not sure what to think of the new Nimbus logo"})
    [call] = fake_slack.wait_for("chat.postMessage")
    assert call.params["channel"] == "C0TRIAGE"
    assert "Needs triage" in call.params["blocks"][0]["text"]["text"]
