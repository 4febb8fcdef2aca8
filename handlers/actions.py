"""Card button listeners."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.services import Services
from handlers.errors import guarded
from handlers.ids import CardAction, CardRef


def _value(body: dict[str, Any]) -> str | None:
    actions = body.get("actions") or [{}]
    return actions[0].get("value")


def register(app: App, services: Services) -> None:
    @app.action(CardAction.CLAIM)
    @guarded
    def claim(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        services.claim(mention_id=ref.m, user=body["user"]["id"])

    @app.action(CardAction.UNCLAIM)
    @guarded
    def unclaim(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        services.unclaim(mention_id=ref.m, user=body["user"]["id"])

    @app.action(CardAction.OPEN_LINK)
    def open_link(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL; we only acknowledge
