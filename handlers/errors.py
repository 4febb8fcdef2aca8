"""Error reporting: known errors become a clear ephemeral message, unknown ones
a logged exception with an id the user can quote.

Listeners are wrapped with :func:`guarded` rather than left to raise: with
``process_before_response=False`` Bolt (1.2x) races when a listener raises
*after* ``ack()`` — the HTTP answer may become a 500 or "unhandled request".
``@app.error`` still catches whatever escapes elsewhere (middleware).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.errors import CarebotError
from bot.services import Services

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def tell_user(client: WebClient, body: dict[str, Any], text: str) -> None:
    """Send ``text`` only to the user who acted, where they acted.

    Slack refuses the bot's ephemeral in a conversation it is not in (a DM
    between two people, a channel it was not invited to); a slash command or a
    click still carries a ``response_url`` that answers there, so that is the
    fallback.
    """
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if user and channel:
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError:
            if not _respond(body.get("response_url"), text):
                raise
    elif user:
        client.chat_postMessage(channel=user, text=text)


def _respond(response_url: Any, text: str) -> bool:
    """Answer ephemerally on a ``response_url``; False when there is none or it failed."""
    if not isinstance(response_url, str) or not response_url:
        return False
    answer = WebhookClient(response_url, timeout=10).send(
        text=text, response_type="ephemeral", replace_original=False)
    return answer.status_code == 200


def report(error: Exception, body: dict[str, Any], client: WebClient) -> None:
    if isinstance(error, CarebotError):
        log.info("refused: %s: %s", type(error).__name__, error)
        message = f":warning: {error}"
    else:
        error_id = uuid.uuid4().hex[:8]
        log.exception("unhandled error id=%s", error_id, exc_info=error)
        message = (f":x: Something went wrong (error id `{error_id}`). "
                   "The team has the details in the logs.")
    try:
        tell_user(client, body, message)
    except Exception:  # noqa: BLE001 - Slack itself may be down; the log has it
        log.warning("could not tell the user: %s", message)


def guarded(listener: F) -> F:
    """Run a listener, reporting any error to the user instead of raising.

    The listener must take ``body`` and ``client`` (Bolt passes arguments by name).
    """

    @functools.wraps(listener)
    def wrapper(**kwargs: Any) -> Any:
        try:
            return listener(**kwargs)
        except Exception as error:  # noqa: BLE001 - reported to the user and logged
            report(error, kwargs["body"], kwargs["client"])
            return None

    return wrapper  # type: ignore[return-value]


def register(app: App, services: Services) -> None:
    @app.error
    def handle_error(error: Exception, body: dict[str, Any], client: WebClient) -> None:
        report(error, body, client)
