"""Event listeners, and the redelivery filter that keeps them idempotent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from bot.services import Services
from handlers.errors import guarded

log = logging.getLogger(__name__)

#: Message subtypes that are still a person's new message (no subtype is the usual one).
PERSON_SUBTYPES = frozenset({None, "", "thread_broadcast", "file_share"})


def register(app: App, services: Services) -> None:
    @app.middleware
    def drop_redelivered_events(
        body: dict[str, Any], next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not services.first_delivery(str(event_id)):
            log.info("dropping redelivered event %s", event_id)
            return BoltResponse(status=200, body="")
        return next()

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], say: Callable[..., Any]) -> None:
        say(text="Hi! I route brand mentions to your teams. Try `/care help`.",
            thread_ts=event.get("ts"))

    @app.event("message")
    @guarded
    def on_message(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        # Staff replies in a card's thread are internal discussion: recorded, never
        # sent to the customer. Edits, joins and bot posts (our own notes) are skipped;
        # a reply also sent to the channel, or with a file, is still a person's reply.
        thread_ts = event.get("thread_ts")
        if (event.get("subtype") not in PERSON_SUBTYPES or event.get("bot_id") or not thread_ts
                or thread_ts == event.get("ts") or not event.get("user")):
            return
        services.workflow.record_thread_reply(
            channel=str(event.get("channel", "")), thread_ts=str(thread_ts),
            ts=str(event.get("ts", "")), user=str(event["user"]), text=str(event.get("text", "")))
