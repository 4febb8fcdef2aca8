"""Hostile customer text, author names and staff input, through the real interfaces:
what carebot posts into Slack must never ping, link or spoof on their behalf, and must
stay within Block Kit's limits.

Slack parses ``<!channel>``, ``<@U…>``, ``<#C…>``, ``<!subteam^S…>`` and ``<url|label>``
in every mrkdwn text (section and context texts, and a message's ``text``); only what
carebot writes itself may use them. Customer and staff text is escaped (``& < >``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.digests import DailyDigest, Insight, MentionRef, ThemeView, WeeklyDigest
from bot.services.attention import HomeItem, HomeView
from bot.views import CardView, EscalationPostView, ModalContext, ReviewRequestView, WorkflowState
from handlers.blocks import card_fallback_text, render_card, to_dicts
from handlers.digest_blocks import daily_messages, weekly_messages
from handlers.home import render_home
from handlers.ids import CardAction, ModalCallback, ModalRef
from handlers.modals import escalate_modal, note_modal, respond_modal, review_modal
from handlers.workflow_blocks import BlockKitMessages
from tests.harness.bot_server import BotServer
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import event_body
from tests.workflow.helpers import click, post_card, selected, submit, text

pytestmark = pytest.mark.usefixtures("paced")  # no exact durations asserted here

#: Everything a hostile customer or a careless colleague might type.
HOSTILE = ("<!channel> <!here> <!everyone> <@U0EVIL> <#C0EVIL> <!subteam^S0EVIL> "
           "<https://evil.example|https://yourbank.com> &lt;b&gt;")
#: A control sequence that did not come from carebot, or an entity left unescaped.
INJECTED = re.compile(r"<(?:!channel|!here|!everyone|@U0EVIL|#C0EVIL|!subteam\^S0EVIL"
                      r"|https://evil)|&lt;b&gt;")
#: Closes carebot's own ``<url|open original>`` link and opens a ping of its own.
HOSTILE_URL = "https://x.com/a> <!everyone> <https://evil.example|bank"

CASE = {"source": "twitter", "id": "9101", "author": "<!here> <@U0EVIL>",
        "text": f"my invoice is broken, help {HOSTILE}", "url": HOSTILE_URL,
        "lang": "<!channel>"}


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """The message ``text`` and every mrkdwn text object in its blocks (what Slack parses)."""
    found: list[str] = []
    if isinstance(payload.get("text"), str):
        found.append(payload["text"])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload.get("blocks") or [])
    return found


def injected(payload: dict[str, Any]) -> list[str]:
    return [m.group(0) for t in mrkdwn_texts(payload) for m in INJECTED.finditer(t)]


def valid_blocks(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()


# -- the card ------------------------------------------------------------------------


def test_card_escapes_customer_text_author_url_and_lang(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    _, channel, _ = post_card(wbot, fake_slack, CASE)
    assert channel == "C0SUPPORT"
    [call] = fake_slack.ok_calls("chat.postMessage")
    assert injected(call.params) == []
    valid_blocks(call.params["blocks"])
    # carebot's own link to the original still works, with the URL made harmless
    meta = json.dumps(call.params["blocks"])
    assert "|open original>" in meta


def test_app_home_escapes_customer_text_and_author(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    post_card(wbot, fake_slack, CASE)
    body = event_body({"type": "app_home_opened", "user": "U0ALICE", "channel": "D0HOME",
                       "tab": "home"}, event_id="EvHomeHostile")
    assert wbot.post_slack(body, content_type="application/json").status_code == 200
    [publish] = fake_slack.wait_for("views.publish")
    view = publish.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert "U0EVIL" in json.dumps(view)  # the hostile mention is listed...
    assert injected(view) == []  # ...harmlessly
    View(**view).validate_json()


# -- staff input -----------------------------------------------------------------------


def test_staff_note_posted_in_the_thread_cannot_ping(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    submit(wbot, ModalCallback.NOTE, {"note": text(f"FYI {HOSTILE}")}, user="U0ALICE",
           mention_id=mention_id, channel=channel)
    [note] = fake_slack.wait_for("chat.postMessage",
                                 where=lambda c: c.params.get("thread_ts") == ts)
    assert "Internal note* from <@U0ALICE>" in note.params["text"]  # carebot's own mention
    assert injected(note.params) == []


def test_escalation_post_pings_only_the_escalation_group(
        wbot: BotServer, fake_slack: FakeSlack) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, CASE)
    click(wbot, CardAction.ESCALATE, mention_id, user="U0ESCALATOR", channel=channel, ts=ts)
    fake_slack.wait_for("views.open")
    submit(wbot, ModalCallback.ESCALATE,
           {"severity": selected("sev1"), "reason": text(f"going viral {HOSTILE}"),
            "context": text(f"VIP {HOSTILE}")},
           user="U0ESCALATOR", mention_id=mention_id, channel=channel)
    [post] = fake_slack.wait_for("chat.postMessage",
                                 where=lambda c: c.params["channel"] == "C0SOCIAL911")
    assert "<!subteam^S0SOCIAL911>" in post.params["text"]
    assert injected(post.params) == []
    valid_blocks(post.params["blocks"])

    # Resolved: the escalator's after-action review request quotes the customer.
    click(wbot, CardAction.RESOLVE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    [dm] = fake_slack.wait_for("chat.postMessage",
                               where=lambda c: c.params["channel"] == "U0ESCALATOR")
    assert injected(dm.params) == []
    valid_blocks(dm.params["blocks"])


# -- extreme input, rendered: Slack's limits (../shared/slack/README.md) ------------------

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
#: 10,000 characters of text, a 255-character name (the most /ingest accepts) made of
#: characters that grow when escaped, emoji, right-to-left and zero-width characters.
EXTREMES = {
    "long": ("<" * 255, "a" * 9_000 + HOSTILE),
    "emoji": ("👩‍👩‍👧‍👦" * 36, "😡" * 10_000),
    "rtl": ("\u202e" + "مرحبا" * 40, "\u202eمرحبا بالعالم " * 700),
    "zero-width": ("\u200b" * 255, "\u200b\u200d\ufeff" * 3_400),
    "lines": ("&" * 255, "\n" * 5_000 + "> line\n" * 800),
    "angles": ("<" * 255, "<" * 10_000),
    "angle-lines": (">" * 255, "<\n" * 5_000),
}

LIMITS = {"section": 3000, "header": 150, "button": 75, "option": 75, "context": 10,
          "message": 50, "text": 40_000}


def within_limits(payload: dict[str, Any], *, max_blocks: int = LIMITS["message"]) -> None:
    """Slack's field limits, checked on the JSON as Slack would see it."""
    blocks = payload.get("blocks") or []
    assert len(blocks) <= max_blocks
    assert len(payload.get("text") or "") <= LIMITS["text"]
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= LIMITS["section"]
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= LIMITS["header"]
        if block["type"] == "context":
            assert len(block["elements"]) <= LIMITS["context"]
            assert all(len(e.get("text", "")) <= LIMITS["section"] for e in block["elements"])
        if block["type"] == "actions":
            for element in block["elements"]:
                if element["type"] == "button":
                    assert len(element["text"]["text"]) <= LIMITS["button"]
                for option in element.get("options", []):
                    assert len(option["text"]["text"]) <= LIMITS["option"]
    if max_blocks == LIMITS["message"]:
        valid_blocks(blocks)
    assert injected(payload) == []


def card_view(author: str, body: str, **changes: Any) -> CardView:
    return CardView(mention_id=1, source="twitter", url=HOSTILE_URL, author=author,
                    author_reach=12_000, text=body, lang="en", category="case",
                    confidence=0.91, method="rules", sentiment="negative",
                    sentiment_score=-0.8, published_at=NOW, ingested_at=NOW,
                    department_label="Support", triage=False, **changes)


@pytest.mark.parametrize("kind", list(EXTREMES))
def test_extreme_cards_render_within_block_kit_limits(kind: str) -> None:
    author, body = EXTREMES[kind]
    reply = WorkflowState(status="claimed", reply_text=body[:3000], reply_status="failed",
                          reply_author="U0ALICE", notes=100, escalated_by="U0BOB",
                          severity="sev1", case_id="<!here>" * 10)
    for view in (card_view(author, body), card_view(author, body, claimed_by="U0ALICE",
                                                    workflow=reply),
                 card_view(author, body, moved_to_channel="C0DOCS")):
        payload = {"text": card_fallback_text(view),
                   "blocks": to_dicts(render_card(view, channel="C0SUPPORT"))}
        within_limits(payload)


@pytest.mark.parametrize("kind", list(EXTREMES))
def test_extreme_escalation_review_and_digests_render_within_limits(kind: str) -> None:
    author, body = EXTREMES[kind]
    messages = BlockKitMessages()
    within_limits(messages.escalation_post(EscalationPostView(
        mention_id=1, escalation_id=1, severity="sev1", severity_label="SEV1 — critical",
        reason=body[:2000], context=body[:2000], escalated_by="U0BOB", automatic=False,
        user_group="S0SOCIAL911", source="twitter", author=author, text=body,
        url=HOSTILE_URL, card_channel="C0SUPPORT")))
    within_limits(messages.review_request(ReviewRequestView(
        mention_id=1, escalation_id=1, severity_label="SEV1 — critical", author=author,
        text=body, resolved_by="U0ALICE")))
    ref = MentionRef(id=1, author=author, text=body, url=HOSTILE_URL, category="case",
                     source="twitter", channel="C0SUPPORT", reason=HOSTILE)
    insight = Insight(mention=ref, score=1.0, starred=True, novelty=1.0, demand=1.0,
                      surprise=1.0)
    weekly = WeeklyDigest(first_day=NOW.date(), last_day=NOW.date(), total=3,
                          starred_count=1, top=insight, runners_up=[insight] * 60)
    daily = DailyDigest(scope="Support", department="support", day=NOW.date(), total=3,
                        previous_total=1, themes=[ThemeView(label=(HOSTILE,), count=2,
                                                            example=ref)] * 30,
                        notable=[ref] * 30)
    for payload in weekly_messages(weekly) + daily_messages(daily):
        within_limits(payload)
    item = HomeItem(mention_id=1, category="case", author=author, text=body, priority=99,
                    sla_status="warning", due_at=NOW, channel="C0SUPPORT",
                    watch_lists=(HOSTILE,))
    home = render_home(HomeView(user="U0ALICE", claimed=[item] * 15, unclaimed=[item] * 15,
                                claimed_total=15, unclaimed_total=99, sla={},
                                conversion_score=None, conversions=0, generated_at=NOW))
    within_limits(home.to_dict(), max_blocks=100)
    ctx = ModalContext(mention_id=1, source="twitter", url=HOSTILE_URL, author=author,
                       text=body, category="case", sentiment="negative", reply_capable=False,
                       draft=body[:3000])
    for render in (respond_modal, escalate_modal, note_modal, review_modal):
        within_limits(render(ctx, ModalRef(m=1, c="C0SUPPORT")).to_dict(), max_blocks=100)
