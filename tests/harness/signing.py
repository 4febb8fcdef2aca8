"""Sign requests exactly as Slack does: ``v0=`` HMAC-SHA256 of ``v0:{ts}:{body}``."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: str, *, timestamp: int | None = None,
                   content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
        "Content-Type": content_type,
    }


def interaction_body(payload: dict[str, Any]) -> str:
    """Block actions and view submissions arrive as ``payload=<json>`` form bodies."""
    return urlencode({"payload": json.dumps(payload)})


def command_body(command: str, text: str = "", *, user: str = "U0MANAGER",
                 channel: str = "C0SUPPORT", response_url: str = "") -> str:
    return urlencode({
        "token": "legacy", "team_id": "T0FAKE", "team_domain": "fake",
        "channel_id": channel, "channel_name": "support", "user_id": user,
        "user_name": user.lower(), "command": command, "text": text,
        "response_url": response_url, "trigger_id": "13345224609.738474920.8088930838d88f0",
        "api_app_id": "A0CAREBOT",
    })


def block_action(action_id: str, value: str, *, user: str, channel: str, message_ts: str,
                 response_url: str = "") -> dict[str, Any]:
    """A ``block_actions`` payload as Slack sends it for a button click on a message."""
    return {
        "type": "block_actions",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "api_app_id": "A0CAREBOT",
        "token": "legacy",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": "13345224609.738474920.8088930838d88f0",
        "channel": {"id": channel, "name": "support"},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "response_url": response_url,
        "actions": [{"action_id": action_id, "block_id": "actions", "value": value,
                     "type": "button", "action_ts": str(time.time())}],
    }


def event_body(event: dict[str, Any], *, event_id: str) -> str:
    return json.dumps({
        "token": "legacy", "team_id": "T0FAKE", "api_app_id": "A0CAREBOT",
        "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
        "event": event,
    })


def view_submission(callback_id: str, values: dict[str, dict[str, Any]], *, user: str,
                    private_metadata: str = "", view_id: str = "V0MODAL") -> dict[str, Any]:
    """A ``view_submission`` payload; ``values`` is ``view.state.values`` as Slack sends it."""
    return {
        "type": "view_submission",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "api_app_id": "A0CAREBOT",
        "token": "legacy",
        "trigger_id": "13345224609.738474920.8088930838d88f0",
        "view": {
            "id": view_id, "team_id": "T0FAKE", "type": "modal", "callback_id": callback_id,
            "private_metadata": private_metadata, "state": {"values": values},
            "hash": "156772938.1827394", "app_id": "A0CAREBOT", "bot_id": "B0BOT",
        },
        "response_urls": [],
    }
