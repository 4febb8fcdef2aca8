"""A fake Slack Web API server on 127.0.0.1 that records every call.

It answers the methods carebot uses with Slack-shaped JSON, and can be told
to answer 429 with ``Retry-After``, 500, or to stall, for a number of calls or
for a period of time — the way bolt-python tests itself against a local server.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.answer.get("ok"))


@dataclass
class Fault:
    method: str  # "*" for every method
    status: int
    times: int | None = None  # None: until ``until``
    until: float | None = None
    retry_after: int | None = None
    stall: float = 0.0
    error: str | None = None
    channel: str | None = None  # only calls for this channel


@dataclass
class Upload:
    """A file uploaded through files_upload_v2's three steps."""

    file_id: str
    filename: str
    length: int
    title: str | None = None
    data: bytes | None = None
    channel: str | None = None
    initial_comment: str | None = None
    completed: bool = False


def dm_of(channel: str) -> str:
    """The fake's id of the DM with a user (``U123`` -> ``D123``); other ids unchanged."""
    return "D" + channel[1:] if channel[:1] in ("U", "W") else channel


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    url: str = ""
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    #: Messages posted per channel, for ``conversations.history``.
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Files by id (files.getUploadURLExternal → POST upload_url → files.completeUploadExternal).
    uploads: dict[str, Upload] = field(default_factory=dict)
    #: Members of Slack user groups, for ``usergroups.users.list``.
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    _file_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    # -- control ------------------------------------------------------------

    def fail(self, method: str, status: int, *, times: int | None = 1,
             seconds: float | None = None, retry_after: int | None = None,
             error: str | None = None, channel: str | None = None) -> None:
        """Answer ``status`` to the next ``times`` calls of ``method`` (or for ``seconds``).

        ``error`` with status 200 answers ``{"ok": false, "error": error}`` the way
        Slack reports API-level failures; ``channel`` limits the fault to one channel.
        """
        until = time.monotonic() + seconds if seconds is not None else None
        with self.lock:
            self.faults.append(Fault(method, status, None if seconds else times, until,
                                     retry_after, error=error, channel=channel))

    def stall(self, method: str, seconds: float, *, times: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(method, 200, times, None, None, stall=seconds))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    # -- inspection ---------------------------------------------------------

    def ok_calls(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.ok]

    def all_calls(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0,
                 where: Any = None) -> list[Call]:
        """Block until ``count`` successful calls of ``method`` (matching ``where``)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [c for c in self.calls if c.method == method and c.ok
                         and (where is None or where(c))]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(c.method, c.status, c.params.get("channel"),
                             c.params.get("thread_ts"), str(c.params.get("text"))[:40])
                            for c in self.calls]
                    raise AssertionError(
                        f"expected {count} ok {method} call(s), got {len(found)}; calls: {seen}")
                self.changed.wait(remaining)

    @staticmethod
    def ts_of(call: Call) -> str:
        """The message ts this fake answered a ``chat.postMessage`` with."""
        return str(call.answer["ts"])

    # -- serving ------------------------------------------------------------

    def _fault_for(self, method: str, params: dict[str, Any]) -> Fault | None:
        now = time.monotonic()
        for fault in list(self.faults):
            if fault.method not in (method, "*"):
                continue
            if fault.channel is not None and params.get("channel") != fault.channel:
                continue
            if fault.until is not None:
                if now < fault.until:
                    return fault
                self.faults.remove(fault)
                continue
            if fault.times is not None and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def respond(self, method: str, params: dict[str, Any], token: str | None
                ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self.lock:
            fault = self._fault_for(method, params)
        if fault is not None and fault.stall:
            time.sleep(fault.stall)
            fault = None
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            error = fault.error or ("ratelimited" if fault.status == 429 else "internal_error")
            answer = {"ok": False, "error": error}
            self._record(Call(method, params, token, time.monotonic(), fault.status, answer))
            return fault.status, headers, answer
        body = self._answer(method, params)
        self._record(Call(method, params, token, time.monotonic(), 200, body))
        return 200, {}, body

    def _record(self, call: Call) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake",
                    "user": "carebot", "team_id": "T0FAKE", "user_id": "U0BOT",
                    "bot_id": "B0BOT"}
        if method == "chat.postMessage":
            ts = f"{time.time():.0f}.{next(self._ts):06d}"
            message = {"type": "message", "text": params.get("text"), "ts": ts,
                       "metadata": params.get("metadata"),
                       "thread_ts": params.get("thread_ts")}
            # As Slack does: a post to a user id goes into the DM with them.
            channel = dm_of(str(params.get("channel")))
            with self.lock:
                self.history.setdefault(channel, []).append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method in ("conversations.history", "conversations.replies"):
            if str(params.get("channel", ""))[:1] in ("U", "W"):
                return {"ok": False, "error": "channel_not_found"}  # a user id is no channel
            # As Slack does: history holds a channel's top-level messages only, replies
            # one thread (its parent first, then the replies).
            oldest = float(params.get("oldest") or 0)
            thread = params.get("ts") if method == "conversations.replies" else None
            with self.lock:
                found = [m for m in self.history.get(str(params.get("channel")), [])
                         if float(m["ts"]) >= oldest
                         and (m["ts"] == thread or m.get("thread_ts") == thread)]
            with_meta = str(params.get("include_all_metadata")).lower() in ("1", "true")
            messages = [m if with_meta else {k: v for k, v in m.items() if k != "metadata"}
                        for m in (found if thread else reversed(found))]
            return {"ok": True, "messages": messages, "has_more": False,
                    "response_metadata": {"next_cursor": ""}}
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        if method == "views.publish":
            view = params.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            return {"ok": True, "view": {"id": f"V{next(self._ts):08d}", **(view or {})}}
        if method in ("views.open", "views.update", "views.push"):
            view = params.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            return {"ok": True, "view": {"id": params.get("view_id") or f"V{next(self._ts):08d}",
                                         **(view or {})}}
        if method.startswith("response/"):
            return {"ok": True}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._file_ids):06d}"
            with self.lock:
                self.uploads[file_id] = Upload(file_id, str(params.get("filename")),
                                               int(params.get("length") or 0))
            return {"ok": True, "file_id": file_id,
                    "upload_url": self.url.removesuffix("api/") + f"upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = []
            with self.lock:
                for item in params.get("files") or []:
                    upload = self.uploads.get(item.get("id"))
                    if upload is None or upload.data is None:
                        return {"ok": False, "error": "file_not_found"}
                    upload.title = item.get("title")
                    upload.channel = params.get("channel_id") or params.get("channels")
                    upload.initial_comment = params.get("initial_comment")
                    upload.completed = True
                    files.append({"id": upload.file_id, "name": upload.filename,
                                  "title": upload.title})
            return {"ok": True, "files": files}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": dm_of(str(params.get("users", "")))}}
        if method == "usergroups.users.list":
            return {"ok": True, "users": list(self.usergroups.get(str(params.get("usergroup")),
                                                                  []))}
        return {"ok": True}

    def uploaded(self, channel: str | None = None) -> list[Upload]:
        """Completed uploads (optionally to one channel), in upload order."""
        with self.lock:
            return [u for u in self.uploads.values()
                    if u.completed and (channel is None or u.channel == channel)]

    def receive_upload(self, file_id: str, data: bytes) -> int:
        """Step two of files_upload_v2: the bytes POSTed to the upload_url."""
        with self.lock:
            upload = self.uploads.get(file_id)
            if upload is not None:
                upload.data = data
        self._record(Call("upload", {"file_id": file_id, "bytes": len(data)}, None,
                          time.monotonic(), 200 if upload else 404, {"ok": upload is not None}))
        return 200 if upload is not None else 404

    def serve(self) -> tuple[ThreadingHTTPServer, threading.Thread]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                path = self.path.split("?", 1)[0]
                if path.startswith("/upload/"):
                    status = fake.receive_upload(path.removeprefix("/upload/"),
                                                 self.rfile.read(length))
                    reply = f"OK - {length}".encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                raw = self.rfile.read(length).decode("utf-8")
                method = path.removeprefix("/api/").strip("/")
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    params = json.loads(raw or "{}")
                else:
                    params = {k: v[0] for k, v in parse_qs(raw).items()}
                for key in ("blocks", "metadata", "attachments", "files"):
                    if isinstance(params.get(key), str):
                        params[key] = json.loads(params[key])
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ") if auth else params.get("token")
                status, headers, body = fake.respond(method, params, token)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}/api/"
        thread = threading.Thread(target=server.serve_forever, name="fake-slack", daemon=True)
        thread.start()
        return server, thread
