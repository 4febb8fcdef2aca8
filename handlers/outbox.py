"""Delivers the durable outbox to Slack's Web API with per-channel pacing.

Slack allows about one message per second per channel with short bursts; a
token bucket per channel keeps us under it, and a 429's ``Retry-After`` pauses
that channel exactly as long as Slack asks. Cards are rendered here, at
delivery time, from the current state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services.delivery import Delivery, OutboxTask
from handlers.blocks import card_fallback_text, render_card, to_dicts

log = logging.getLogger(__name__)

#: Slack errors that will not go away by retrying the same request.
PERMANENT_ERRORS = {
    "channel_not_found", "not_in_channel", "is_archived", "invalid_blocks", "invalid_arguments",
    "msg_too_long", "no_text", "invalid_auth", "account_inactive", "token_revoked",
    "missing_scope", "message_not_found", "cant_update_message", "restricted_action",
}


class ChannelPacer:
    """Token bucket per channel: ``rate`` messages/s, bursts up to ``burst``."""

    def __init__(self, *, rate: float = 1.0, burst: int = 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens: dict[str, float] = {}
        self._stamp: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}

    def _refill(self, channel: str) -> float:
        now = self.clock()
        tokens = self._tokens.get(channel, float(self.burst))
        last = self._stamp.get(channel, now)
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        self._tokens[channel] = tokens
        self._stamp[channel] = now
        return tokens

    def ready(self, channel: str) -> bool:
        if self._paused_until.get(channel, 0.0) > self.clock():
            return False
        return self._refill(channel) >= 1.0

    def take(self, channel: str) -> None:
        self._refill(channel)
        self._tokens[channel] -= 1.0

    def pause(self, channel: str, seconds: float) -> None:
        self._paused_until[channel] = self.clock() + seconds
        self._tokens[channel] = 0.0

    def blocked(self, channels: set[str]) -> set[str]:
        return {c for c in channels if not self.ready(c)}

    def wait_hint(self) -> float:
        """Seconds until some blocked channel may send again (for the idle wait)."""
        now = self.clock()
        hints = [until - now for until in self._paused_until.values() if until > now]
        hints += [(1.0 - t) / self.rate for t in self._tokens.values() if t < 1.0]
        return max(0.05, min(hints)) if hints else 1.0


class SlackDeliverer:
    """Sends leased outbox tasks; ``run_once`` returns how many it handled."""

    def __init__(self, delivery: Delivery, client: WebClient, *,
                 pacer: ChannelPacer | None = None, batch: int = 20) -> None:
        self.delivery = delivery
        self.client = client
        self.pacer = pacer or ChannelPacer()
        self.batch = batch
        self._known_channels: set[str] = set()

    def run_once(self) -> int:
        skip = self.pacer.blocked(self._known_channels)
        tasks = self.delivery.lease_due(limit=self.batch, skip_channels=skip)
        handled = 0
        for task in tasks:
            self._known_channels.add(task.channel)
            if not self.pacer.ready(task.channel):
                # Over this channel's pace: give the lease back, try again soon.
                self.delivery.failed(task, error="paced", retry_after=self.pacer.wait_hint(),
                                     permanent=False)
                continue
            self.pacer.take(task.channel)
            self._send(task)
            handled += 1
        return handled

    def _send(self, task: OutboxTask) -> None:
        try:
            ts = self._call(task)
        except SlackApiError as exc:
            status = exc.response.status_code
            code = str(exc.response.get("error", "")) if exc.response.data else ""
            if status == 429:
                retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
                self.pacer.pause(task.channel, retry_after)
                log.warning("slack rate-limited channel=%s retry_after=%s", task.channel,
                            retry_after)
                self.delivery.failed(task, error="ratelimited", retry_after=retry_after,
                                     permanent=False)
                return
            permanent = status < 500 and code in PERMANENT_ERRORS
            outcome = self.delivery.failed(task, error=f"{status} {code}".strip(),
                                           retry_after=None, permanent=permanent)
            log.warning("slack call failed outbox=%s status=%s error=%s -> %s", task.id, status,
                        code, outcome)
            return
        except (OSError, TimeoutError) as exc:  # connection refused, reset, timeout
            outcome = self.delivery.failed(task, error=type(exc).__name__, retry_after=None,
                                           permanent=False)
            log.warning("slack unreachable outbox=%s error=%s -> %s", task.id,
                        type(exc).__name__, outcome)
            return
        self.delivery.succeeded(task, ts=ts)

    def _call(self, task: OutboxTask) -> str | None:
        if task.kind == "message":
            resp = self.client.chat_postMessage(**task.payload)
            return str(resp["ts"])
        if task.card is None:
            raise ValueError(f"outbox task {task.id} has no card")
        blocks = to_dicts(render_card(task.card, channel=task.channel))
        text = card_fallback_text(task.card)
        if task.kind == "post_card":
            resp = self.client.chat_postMessage(
                channel=task.channel, text=text, blocks=blocks,
                unfurl_links=False, unfurl_media=False,
                metadata={"event_type": "carebot_card",
                          "event_payload": {"mention_id": task.mention_id,
                                            "outbox_id": task.id}},
            )
            return str(resp["ts"])
        if task.ts is None:
            return None  # the post has not gone out yet; it will render current state
        self.client.chat_update(channel=task.channel, ts=task.ts, text=text, blocks=blocks)
        return task.ts
