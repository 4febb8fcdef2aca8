"""Delivers the durable outbox to Slack's Web API with per-channel pacing.

Slack allows about one message per second per channel with short bursts; a
token bucket per channel, kept in the database so that replicas share it,
keeps us under it, and a 429's ``Retry-After`` pauses that channel (for every
replica) exactly as long as Slack asks. Cards are rendered here, at delivery
time, from the current state.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.metrics import channel_kind
from bot.services.delivery import Delivery, OutboxTask
from handlers.blocks import card_fallback_text, render_card, to_dicts

log = logging.getLogger(__name__)

#: Slack errors that will not go away by retrying the same request.
PERMANENT_ERRORS = {
    "channel_not_found", "not_in_channel", "is_archived", "invalid_blocks", "invalid_arguments",
    "msg_too_long", "no_text", "invalid_auth", "account_inactive", "token_revoked",
    "missing_scope", "message_not_found", "cant_update_message", "restricted_action",
}


class SlackDeliverer:
    """Sends leased outbox tasks; ``run_once`` returns how many it handled."""

    def __init__(self, delivery: Delivery, client: WebClient, *, batch: int = 20) -> None:
        self.delivery = delivery
        self.client = client
        self.batch = batch
        self._wait_hint = 1.0
        self.metrics = delivery.services.metrics

    def run_once(self) -> int:
        """Send what is due, highest priority first; returns how many were sent or failed."""
        paused = self.delivery.paused_channels()
        tasks = self.delivery.lease_due(limit=self.batch, skip_channels=paused)
        handled = 0
        waits: list[float] = list(paused.values())
        full: set[str] = set()
        for task in tasks:
            wait = 1.0 if task.channel in full else self.delivery.take_slot(task.channel)
            if wait > 0:
                # Over this channel's pace: give the lease back untried, due when a slot is.
                full.add(task.channel)
                waits.append(wait)
                self.delivery.release(task, seconds=wait)
                continue
            if not self.delivery.renew(task):
                # Its lease ran out while earlier rows were sent (Slack slow) and another
                # replica took it over: sending it too would post it twice.
                log.info("outbox %s was taken over by another worker; not sending", task.id)
                continue
            self._send(task)
            handled += 1
        self._wait_hint = max(0.05, min(waits)) if waits else 1.0
        return handled

    def wait_hint(self) -> float:
        """How long the worker may sleep before a paced channel has a slot again."""
        return self._wait_hint

    def _send(self, task: OutboxTask) -> None:
        if task.waits_for_card:
            # The card's post is still on its way: update it (or reply in its thread)
            # once it has a ts.
            self.delivery.wait_for_card(task)
            return
        try:
            ts = self._already_posted(task) if task.in_doubt else None
            if ts is None:
                ts = self._call(task)
        except SlackApiError as exc:
            status = exc.response.status_code
            self.metrics.slack_error(method=_method(exc, task), status=str(status))
            code = str(exc.response.get("error", "")) if exc.response.data else ""
            if status == 429:
                retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
                self.delivery.pause_channel(task.channel, retry_after)
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
            self.metrics.slack_error(method=_method(None, task), status="unreachable")
            outcome = self.delivery.failed(task, error=type(exc).__name__, retry_after=None,
                                           permanent=False)
            log.warning("slack unreachable outbox=%s error=%s -> %s", task.id,
                        type(exc).__name__, outcome)
            return
        if self.delivery.succeeded(task, ts=ts):
            self._count_posted(task)

    def _count_posted(self, task: OutboxTask) -> None:
        services = self.delivery.services
        latency = None
        if task.kind == "post_card" and task.card is not None and task.card.ingested_at:
            latency = (services.clock() - task.card.ingested_at).total_seconds()
        self.metrics.posted(kind=task.kind, channel_kind=channel_kind(services.config,
                                                                      task.channel),
                            latency=latency)

    def _already_posted(self, task: OutboxTask) -> str | None:
        """The ts of this task's message if an earlier, interrupted attempt posted it.

        Every post carries its outbox id in Slack message metadata, so after a
        crash between the Web API call and recording its result, the channel's
        recent history says whether the message went out — no duplicate card,
        digest or alert. Only messages posted since the task was created are read.
        """
        if task.kind not in ("post_card", "message") or task.created_at is None:
            return None
        thread_ts = task.payload.get("thread_ts")
        places = [(str(task.payload.get("channel", task.channel)),
                   str(thread_ts) if thread_ts else None)]
        places += [p for p in task.doubt_threads if p not in places]
        oldest = f"{task.created_at.timestamp() - 1:.6f}"
        for channel, thread in places:
            ts = self._find_posted(task.id, channel, thread, oldest)
            if ts is not None:
                return ts
        return None

    def _find_posted(self, outbox_id: int, channel: str, thread_ts: str | None,
                     oldest: str) -> str | None:
        """The ts of the message carrying ``outbox_id`` in a channel or one thread."""
        if channel[:1] in ("U", "W"):
            # A message to a user went into the DM with them; a user id has no history
            # (channel_not_found, which would park the message as undeliverable).
            channel = str(self.client.conversations_open(users=channel)["channel"]["id"])
        # A reply is not in the channel's history, only in its thread.
        read = (partial(self.client.conversations_replies, ts=thread_ts) if thread_ts
                else self.client.conversations_history)
        cursor: str | None = None
        for _ in range(10):  # at most 10 pages of 200: far more than one task's window
            resp = read(channel=channel, oldest=oldest, limit=200, include_all_metadata=True,
                        cursor=cursor)
            messages: list[dict[str, Any]] = resp.get("messages") or []
            for message in messages:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("outbox_id") == outbox_id:
                    log.info("outbox %s was already posted (ts %s); not posting again",
                             outbox_id, message.get("ts"))
                    return str(message["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    def _call(self, task: OutboxTask) -> str | None:
        if task.kind == "message":
            payload = dict(task.payload)
            metadata = dict(payload.get("metadata") or {})
            metadata.setdefault("event_type", "carebot_message")
            metadata["event_payload"] = {**(metadata.get("event_payload") or {}),
                                         "outbox_id": task.id}
            payload["metadata"] = metadata
            resp = self.client.chat_postMessage(**payload)
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
        assert task.ts is not None  # _send keeps updates until their card has a ts
        self.client.chat_update(channel=task.channel, ts=task.ts, text=text, blocks=blocks)
        return task.ts


def _method(exc: SlackApiError | None, task: OutboxTask) -> str:
    """The Web API method that failed: from the response's URL, else from the task."""
    url = getattr(exc.response, "api_url", "") if exc is not None else ""
    if url:
        return str(url).rstrip("/").rsplit("/", 1)[-1]
    return "chat.update" if task.kind == "update_card" else "chat.postMessage"
