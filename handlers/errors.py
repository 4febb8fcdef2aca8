"""One global error handler: known errors become a clear ephemeral message,
unknown ones a logged exception with an id the user can quote."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.errors import CarebotError
from bot.services import Services

log = logging.getLogger(__name__)


def tell_user(client: WebClient, body: dict[str, Any], text: str) -> None:
    """Send ``text`` only to the user who acted, where they acted."""
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if user and channel:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    elif user:
        client.chat_postMessage(channel=user, text=text)


def register(app: App, services: Services) -> None:
    @app.error
    def handle_error(error: Exception, body: dict[str, Any], client: WebClient) -> None:
        if isinstance(error, CarebotError):
            log.info("refused: %s: %s", type(error).__name__, error)
            tell_user(client, body, f":warning: {error}")
            return
        error_id = uuid.uuid4().hex[:8]
        log.exception("unhandled error id=%s", error_id, exc_info=error)
        try:
            tell_user(client, body, f":x: Something went wrong (error id `{error_id}`). "
                                    "The team has the details in the logs.")
        except Exception:  # noqa: BLE001 - Slack itself may be down; the log has it
            log.warning("could not tell the user about error id=%s", error_id)
