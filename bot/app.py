"""The app factory: one Bolt app, the ASGI server around it, the workers.

Everything is built here from ``Settings`` and passed down; nothing is global.
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.internals import parse_body
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.classify import Classifier
from bot.config import CareConfig, Settings, load_care_config
from bot.errors import InvalidInput
from bot.metrics import Metrics
from bot.services import Clock, Services, utc_clock
from bot.services.delivery import Delivery
from bot.services.dispatch import Dispatcher
from bot.services.ingest import parse_ingest_body
from bot.workers import Worker, Workers
from handlers import register_all
from handlers.envelope import envelope_problems
from handlers.outbox import SlackDeliverer
from scheduler.core import JobScheduler
from scheduler.jobs import register_jobs
from storage.db import Engine, make_engine, migrate, session_scope
from storage.observability import QueueSnapshot, queue_snapshot

log = logging.getLogger(__name__)

MAX_INGEST_BYTES = 5 * 1024 * 1024
#: Slack's largest requests (a modal submission with its view and state) are a few
#: hundred kilobytes; anything far larger is refused before it is buffered, since
#: /slack/events reads the body before it can check the signature.
MAX_SLACK_BYTES = 2 * 1024 * 1024


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it is over ``limit`` bytes (by its declared
    Content-Length, or while it streams in): never buffers more than ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> Response:
    return JSONResponse({"error": f"body over {limit} bytes"}, status_code=413)


def default_classifier(settings: Settings, config: CareConfig) -> Classifier:
    """The classification engine the settings ask for (rules + model)."""
    from bot.classify.factory import build_classifier

    return build_classifier(
        config, model=settings.carebot_model, backend=settings.carebot_encoder_backend
    )


class ResilientAuthorize:
    """Single-workspace authorization that survives a Slack outage.

    Bolt's default calls ``auth.test`` on the first request and fails the
    request when Slack is down. The token is ours and fixed, so a click or
    command can be processed (and its effects queued in the outbox) without
    Slack; the bot identity is fetched once Slack answers, and cached.
    """

    def __init__(self, client: WebClient, token: str | None, *, retry_seconds: float = 60.0):
        self.client = client
        self.token = token
        self.retry_seconds = retry_seconds
        self._identity: dict[str, str | None] | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    def identity(self) -> dict[str, str | None]:
        with self._lock:
            if self._identity is None and time.monotonic() >= self._next_try:
                try:
                    resp = self.client.auth_test(token=self.token)
                    self._identity = {"bot_user_id": resp.get("user_id"),
                                      "bot_id": resp.get("bot_id")}
                except (SlackApiError, OSError) as exc:
                    self._next_try = time.monotonic() + self.retry_seconds
                    log.warning("auth.test failed (%s); continuing with the configured token",
                                type(exc).__name__)
            return self._identity or {"bot_user_id": None, "bot_id": None}

    def as_function(self) -> Callable[..., AuthorizeResult]:
        """A plain function: Bolt passes arguments by the names it finds on it."""

        def authorize(enterprise_id: str | None, team_id: str | None,
                      user_id: str | None) -> AuthorizeResult:
            ident = self.identity()
            return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                                   bot_token=self.token, bot_user_id=ident["bot_user_id"],
                                   bot_id=ident["bot_id"], user_id=user_id)

        return authorize


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Runtime:
    settings: Settings
    config: CareConfig
    engine: Engine
    services: Services
    bolt: App
    workers: Workers
    deliverer: SlackDeliverer
    scheduler: JobScheduler


def build_runtime(
    settings: Settings,
    *,
    config: CareConfig | None = None,
    classifier: Classifier | None = None,
    clock: Clock = utc_clock,
    engine: Engine | None = None,
    rate: float | None = None,
    poll: float = 1.0,
) -> Runtime:
    """Wire the whole bot. ``settings.require`` has been checked by the caller."""
    config = config or load_care_config(settings.carebot_config)
    engine = engine or make_engine(settings.database_url)
    migrate(engine)
    if classifier is None:
        classifier = default_classifier(settings, config)
    workers = Workers()
    owner = replica_id()
    metrics = Metrics(replica=owner)
    services = Services(engine=engine, config=config, classifier=classifier, clock=clock,
                        notify=workers.notify, metrics=metrics)

    def queues() -> QueueSnapshot:
        with session_scope(engine) as session:
            return queue_snapshot(session=session)

    metrics.watch(queues)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    signing = (settings.slack_signing_secret.get_secret_value()
               if settings.slack_signing_secret else None)
    # Listener-side calls (ephemeral replies) retry briefly on 429/5xx.
    # No token on it: Bolt hands each request a client with the token that
    # ``authorize`` returns.
    bolt_client = WebClient(base_url=settings.slack_api_url, timeout=10,
                            retry_handlers=[ConnectionErrorRetryHandler(),
                                            RateLimitErrorRetryHandler(max_retry_count=1),
                                            ServerErrorRetryHandler(max_retry_count=1)])
    # Listeners ack first and then do their work in this pool; it must be large
    # enough that a burst of clicks never waits 3 s for a thread to call ack().
    bolt = App(client=bolt_client, signing_secret=signing,
               authorize=ResilientAuthorize(bolt_client, token).as_function(),
               process_before_response=False,
               listener_executor=ThreadPoolExecutor(max_workers=64,
                                                    thread_name_prefix="carebot-listener"))
    register_all(bolt, services)
    # The outbox owns its retry policy (durable, paced): no hidden retries below it.
    # A call must end well inside the lease of the row it sends, or another replica
    # could take the row over while the call is still in flight and send it again.
    lease = timedelta(seconds=settings.carebot_lease_seconds)
    outbox_client = WebClient(token=token, base_url=settings.slack_api_url,
                              timeout=outbox_timeout(lease), retry_handlers=[])
    deliverer = SlackDeliverer(
        Delivery(services, owner=owner, rate=rate or settings.carebot_slack_rate, lease=lease),
        outbox_client)
    workers.add("pipeline", Worker(
        "pipeline", lambda: len(services.route_pending(owner=owner, lease=lease)), poll=poll))
    workers.add("outbox", Worker("outbox", deliverer.run_once, poll=poll,
                                 idle_wait=deliverer.wait_hint))
    # Outbound HTTP of the workflow (CRM case webhooks, source replies), durable.
    workers.add("dispatch", Worker("dispatch", Dispatcher(services.workflow, owner=owner).run_once,
                                   poll=poll))
    scheduler = JobScheduler(engine, owner=owner, clock=clock)
    register_jobs(scheduler, services)
    return Runtime(settings=settings, config=config, engine=engine, services=services,
                   bolt=bolt, workers=workers, deliverer=deliverer, scheduler=scheduler)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def _unauthorised() -> JSONResponse:
    return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


def create_asgi(runtime: Runtime, *, start_workers: bool = True) -> Starlette:
    """The HTTP surface: Slack events, ingest, health."""
    settings = runtime.settings
    ingest_token = settings.ingest_token.get_secret_value() if settings.ingest_token else None
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    verifier = (SignatureVerifier(settings.slack_signing_secret.get_secret_value())
                if settings.slack_signing_secret else None)

    async def slack_events(request: Request) -> Response:
        body = await read_capped(request, MAX_SLACK_BYTES)
        if body is None:
            return _too_large(MAX_SLACK_BYTES)
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "body is not UTF-8"}, status_code=400)
        headers = dict(request.headers)
        # Authenticate, then check the body's shape, before Bolt reads it: Bolt
        # assumes Slack's types while building a request, so a signed but
        # malformed body would otherwise raise inside it and answer 500.
        if verifier is not None and not verifier.is_valid(
                body=text_body, timestamp=headers.get("x-slack-request-timestamp", ""),
                signature=headers.get("x-slack-signature", "")):
            return JSONResponse({"error": "invalid request"}, status_code=401)
        try:
            # Bolt's own parser, and its reading of the content type.
            parsed = parse_body(text_body, headers.get("content-type", "").split(";")[0] or None)
        except ValueError as exc:
            return JSONResponse({"error": "malformed Slack payload",
                                 "detail": [{"loc": "body", "msg": f"not valid JSON: {exc}"}]},
                                status_code=400)
        problems = envelope_problems(parsed)
        if problems:
            return JSONResponse({"error": "malformed Slack payload", "detail": problems},
                                status_code=400)
        bolt_request = BoltRequest(body=text_body, query=str(request.query_params),
                                   headers=dict(request.headers))
        # Bolt's App is synchronous: dispatch in the thread pool so the event
        # loop keeps serving other requests while a listener runs.
        bolt_response: BoltResponse = await run_in_threadpool(runtime.bolt.dispatch,
                                                              bolt_request)
        return Response(status_code=bolt_response.status, content=bolt_response.body,
                        headers=bolt_response.first_headers_without_set_cookie())

    async def ingest(request: Request) -> Response:
        if ingest_token is None:
            return JSONResponse({"error": "ingest is disabled: INGEST_TOKEN is not set"},
                                status_code=503)
        if not _bearer_matches(request, ingest_token):
            return _unauthorised()
        body = await read_capped(request, MAX_INGEST_BYTES)
        if body is None:
            return _too_large(MAX_INGEST_BYTES)
        try:
            items = parse_ingest_body(body)
        except InvalidInput as exc:
            return JSONResponse({"error": "invalid mention(s)",
                                 "detail": getattr(exc, "errors", [])}, status_code=422)
        result = await run_in_threadpool(runtime.services.ingest, items)
        return JSONResponse({"accepted": len(result.new_ids), "duplicates": result.duplicates,
                             "ids": result.new_ids}, status_code=202)

    async def metrics(request: Request) -> Response:
        if metrics_token is not None and not _bearer_matches(request, metrics_token):
            return _unauthorised()
        # The queue gauges query the database: off the event loop.
        data, content_type = await run_in_threadpool(runtime.services.metrics.exposition)
        return Response(data, headers={"Content-Type": content_type})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        def check() -> None:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await run_in_threadpool(check)
        except Exception as exc:  # noqa: BLE001 - report, never crash the probe
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__},
                                status_code=503)
        return JSONResponse({"status": "ready"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if start_workers:
            runtime.workers.start()
            runtime.scheduler.start()
        try:
            yield
        finally:
            runtime.scheduler.stop()
            runtime.workers.stop()

    routes = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/ingest", ingest, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def outbox_timeout(lease: timedelta) -> int:
    """Seconds an outbox Slack call may take: 10, or half the lease when that is
    shorter (slack_sdk takes whole seconds; at least 1)."""
    return max(1, min(10, int(lease.total_seconds() // 2)))
