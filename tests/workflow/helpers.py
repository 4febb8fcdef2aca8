"""Driving cards the way Slack does: clicks, overflow choices, modal submissions."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlmodel import Session, col, select

from handlers.ids import CardAction, CardRef, ModalRef, MoreAction, MoreRef
from storage.tables import AuditLog, Engagement, Mention
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import Call, FakeSlack
from tests.harness.signing import block_action, interaction_body, view_submission


def post_card(bot: BotServer, fake: FakeSlack, item: dict[str, Any]) -> tuple[int, str, str]:
    """Ingest a mention and wait for its card: (mention id, channel, ts)."""
    _pace(bot)
    before = len(fake.ok_calls("chat.postMessage"))
    mention_id = bot.ingest(item).json()["ids"][0]
    calls = fake.wait_for("chat.postMessage", before + 1)
    call = calls[before]
    return mention_id, str(call.params["channel"]), fake.ts_of(call)


def _pace(bot: BotServer) -> None:
    clock = bot.runtime.services.clock
    if getattr(clock, "step", 0):
        clock.advance(seconds=clock.step)  # type: ignore[attr-defined]


def click(bot: BotServer, action: CardAction, mention_id: int, *, user: str, channel: str,
          ts: str) -> httpx.Response:
    _pace(bot)
    return bot.click(action, CardRef(m=mention_id).dump(), user=user, channel=channel,
                     message_ts=ts)


def choose(bot: BotServer, action: MoreAction, mention_id: int, *, user: str, channel: str,
           ts: str) -> httpx.Response:
    """Pick an option in the card's overflow menu."""
    _pace(bot)
    payload = block_action(CardAction.MORE, "", user=user, channel=channel, message_ts=ts)
    payload["actions"] = [{"action_id": CardAction.MORE, "block_id": "actions",
                           "type": "overflow", "action_ts": "1.0",
                           "selected_option": {"text": {"type": "plain_text", "text": action},
                                               "value": MoreRef(m=mention_id, a=action).dump()}}]
    return bot.post_slack(interaction_body(payload))


def text(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def selected(value: str) -> dict[str, Any]:
    return {"value": {"type": "static_select", "selected_option": {"value": value}}}


def submit(bot: BotServer, callback: str, values: dict[str, dict[str, Any]], *, user: str,
           mention_id: int, channel: str | None = None,
           escalation: int | None = None) -> httpx.Response:
    _pace(bot)
    meta = ModalRef(m=mention_id, c=channel, e=escalation).dump()
    payload = view_submission(callback, values, user=user, private_metadata=meta)
    return bot.post_slack(interaction_body(payload))


def blocks_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def card_updates(fake: FakeSlack, channel: str, ts: str) -> list[Call]:
    return [c for c in fake.ok_calls("chat.update")
            if c.params.get("channel") == channel and c.params.get("ts") == ts]


def wait_card(fake: FakeSlack, channel: str, ts: str, contains: str,
              timeout: float = 10.0, clock: Any = None) -> list[dict[str, Any]]:
    """Wait until the card at (channel, ts) is re-rendered with ``contains``; its blocks.

    With ``clock``, the wait also moves it (1 s a poll) so retries come due.
    """

    def check() -> list[dict[str, Any]] | None:
        if clock is not None:
            clock.advance(seconds=1)
        for call in reversed(card_updates(fake, channel, ts)):
            if contains in blocks_text(call.params["blocks"]):
                return call.params["blocks"]  # type: ignore[no-any-return]
        return None

    return eventually(check, timeout=timeout,  # type: ignore[no-any-return]
                      interval=0.2 if clock is not None else 0.02)


def engagement(bot: BotServer, mention_id: int) -> Engagement:
    with Session(bot.runtime.engine) as session:
        row = session.get(Engagement, mention_id)
        assert row is not None
        return row


def mention(bot: BotServer, mention_id: int) -> Mention:
    with Session(bot.runtime.engine) as session:
        row = session.get(Mention, mention_id)
        assert row is not None
        return row


def actions(bot: BotServer, mention_id: int) -> list[tuple[str, str]]:
    with Session(bot.runtime.engine) as session:
        rows = session.exec(select(AuditLog).where(AuditLog.mention_id == mention_id)
                            .order_by(col(AuditLog.id))).all()
        return [(r.actor, r.action) for r in rows]
