"""A local HTTP server (127.0.0.1) that plays a listening source's API.

Routes are keyed by (method, path); each holds a queue of scripted answers —
recorded payloads from ``fixtures/``, errors, stalls — consumed in order, the
last one repeating. Every request is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture(name))


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class SourceServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.url = ""

    # -- scripting --------------------------------------------------------------

    def add(self, path: str, *answers: Answer, method: str = "GET") -> None:
        with self.lock:
            self.routes.setdefault((method, path), []).extend(answers)

    def reset(self, path: str, *answers: Answer, method: str = "GET") -> None:
        with self.lock:
            self.routes[(method, path)] = list(answers)

    @staticmethod
    def json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return Answer(status, body, {"Content-Type": "application/json", **(headers or {})})

    @staticmethod
    def file(name: str, content_type: str = "application/json", status: int = 200,
             headers: dict[str, str] | None = None) -> Answer:
        return Answer(status, fixture(name), {"Content-Type": content_type, **(headers or {})})

    def requests_for(self, path: str, method: str = "GET") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    # -- serving ----------------------------------------------------------------

    def _answer(self, method: str, path: str) -> Answer:
        with self.lock:
            queue = self.routes.get((method, path))
            if not queue:
                return Answer(404, b'{"error": "not found"}',
                              {"Content-Type": "application/json"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def serve(self) -> ThreadingHTTPServer:
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, parts.path,
                                  {k: v[0] for k, v in parse_qs(parts.query).items()},
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                with server_self.lock:
                    server_self.requests.append(request)
                answer = server_self._answer(self.command, parts.path)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _handle  # noqa: N815 - http.server's naming
            do_POST = _handle  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="source-server", daemon=True).start()
        return server
