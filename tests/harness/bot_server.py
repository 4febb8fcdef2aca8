"""The bot as a real HTTP server (uvicorn on 127.0.0.1, random port)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from bot.app import Runtime, create_asgi
from tests.harness.signing import block_action, interaction_body, signed_headers

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-test-0000-token"
INGEST_TOKEN = "test-ingest-token-abcdef"


@dataclass
class BotServer:
    runtime: Runtime
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    http: httpx.Client

    # -- Slack-shaped requests ---------------------------------------------

    def post_slack(self, body: str, *, content_type: str = "application/x-www-form-urlencoded",
                   secret: str = SIGNING_SECRET, timestamp: int | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        all_headers = signed_headers(secret, body, timestamp=timestamp, content_type=content_type)
        all_headers.update(headers or {})
        return self.http.post(f"{self.url}/slack/events", content=body, headers=all_headers)

    def click(self, action_id: str, value: str, *, user: str, channel: str, message_ts: str,
              **kwargs: Any) -> httpx.Response:
        payload = block_action(action_id, value, user=user, channel=channel,
                               message_ts=message_ts)
        return self.post_slack(interaction_body(payload), **kwargs)

    def ingest(self, body: Any, *, token: str | None = INGEST_TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(body, (bytes, str)):
            return self.http.post(f"{self.url}/ingest", content=body,
                                  headers={**headers, "Content-Type": "application/json"})
        return self.http.post(f"{self.url}/ingest", json=body, headers=headers)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.http.close()


def start_bot_server(runtime: Runtime, *, start_workers: bool = True) -> BotServer:
    app = create_asgi(runtime, start_workers=start_workers)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="bot-http")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("bot server did not start")
        time.sleep(0.01)
    return BotServer(runtime=runtime, url=f"http://127.0.0.1:{port}", server=server,
                     thread=thread, http=httpx.Client(timeout=10))


def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns a truthy value (asynchronous effects)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(interval)
