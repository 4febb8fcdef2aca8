"""Several replicas on one PostgreSQL, as production runs them: what the burst test in
``test_replicas.py`` does not reach.

Replicas are stood up the way the crash tests do it — separate deliverers, schedulers and
runtimes with their own lease owners and clocks, on one real PostgreSQL and one fake Slack
server — so each race can be driven step by step; the last tests run real replica
processes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from bot.app import Runtime, build_runtime
from bot.classify.factory import rules_classifier
from bot.config import CareConfig, load_settings
from bot.domain import MentionIn
from bot.services import utc_clock
from bot.services.delivery import Delivery
from bot.services.dispatch import Dispatcher
from handlers.blocks import render_card, to_dicts
from handlers.ids import CardAction, CardRef
from handlers.outbox import SlackDeliverer
from scheduler.core import Job, JobScheduler
from storage import escalations as esc_store
from storage import jobs, outbox
from storage.db import make_engine, migrate, session_scope
from storage.tables import Outbox
from storage.workflow_tables import Dispatch
from tests.harness.bot_server import BOT_TOKEN, INGEST_TOKEN, SIGNING_SECRET, eventually
from tests.harness.fake_slack import FakeSlack
from tests.harness.postgres import PostgresServer, create_database
from tests.harness.signing import block_action, interaction_body, signed_headers
from tests.production.test_replicas import Replica, post_batch, start_replicas

pytestmark = pytest.mark.postgres

CASE = "my laptop won't boot since the update, help"


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def pg_url(postgres_admin_url: str) -> str:
    return create_database(postgres_admin_url)


def make_runtime(fake_slack: FakeSlack, url: str, config: CareConfig,
                 clock: Callable[[], datetime]) -> Runtime:
    settings = load_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                             ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url,
                             database_url=url, _env_file=None)
    return build_runtime(settings, config=config, classifier=rules_classifier(config),
                         clock=clock)


@pytest.fixture
def runtime(fake_slack: FakeSlack, pg_url: str, care_config: CareConfig) -> Iterator[Runtime]:
    rt = make_runtime(fake_slack, pg_url, care_config, Clock())
    yield rt
    rt.engine.dispose()


def replica(rt: Runtime, owner: str, **kwargs: Any) -> SlackDeliverer:
    """Another replica's outbox deliverer on the same database and fake Slack."""
    return SlackDeliverer(Delivery(rt.services, owner=owner, **kwargs), rt.deliverer.client)


def posted_card(rt: Runtime, fake_slack: FakeSlack, external_id: str = "m1") -> int:
    [mention_id] = rt.services.ingest([MentionIn(source="twitter", external_id=external_id,
                                                 author="dana", text=CASE)]).new_ids
    rt.services.route_pending(owner="w")
    assert rt.deliverer.run_once() == 1
    return mention_id


def outbox_ids_posted(fake_slack: FakeSlack) -> Counter[int]:
    return Counter(c.params["metadata"]["event_payload"]["outbox_id"]
                   for c in fake_slack.ok_calls("chat.postMessage"))


# -- outbox ------------------------------------------------------------------------------


def test_older_card_render_never_lands_after_a_newer_one(runtime: Runtime,
                                                         fake_slack: FakeSlack) -> None:
    """Replica A leased a card update (rendering "claimed by U1"); the user unclaims, which
    queues a second update; replica B must not send it while A's older render is still on
    its way, or A's chat.update lands last and the card shows a claim nobody holds."""
    services = runtime.services
    mention_id = posted_card(runtime, fake_slack)
    services.claim(mention_id=mention_id, user="U1")
    a, b = replica(runtime, "replica-a"), replica(runtime, "replica-b")
    [older] = a.delivery.lease_due(limit=10)  # renders the claim ...
    assert older.card is not None and older.card.claimed_by == "U1"
    services.unclaim(mention_id=mention_id, user="U1")  # ... which is undone meanwhile

    b.run_once()  # B is free while A's chat.update is in flight
    a._send(older)  # A's slow call lands
    b.run_once()  # whatever is still due

    updates = fake_slack.ok_calls("chat.update")
    assert updates, "no card update was sent"
    view = services.card_view(mention_id)
    assert view.claimed_by is None
    assert updates[-1].params["blocks"] == to_dicts(render_card(view,
                                                                channel=updates[-1].params[
                                                                    "channel"]))
    with Session(runtime.engine) as session:
        assert {o.status for o in session.exec(select(Outbox))} == {"sent"}


def test_a_lease_that_ran_out_mid_batch_is_not_sent_twice(runtime: Runtime,
                                                          fake_slack: FakeSlack) -> None:
    """Slack is slow: replica A is still working through its leased batch when the leases of
    the rows it has not reached yet run out, and replica B takes them over. A must check that
    it still holds a row before sending it, or both post it."""
    services = runtime.services
    services.clock = utc_clock  # real time: the leases run out while Slack stalls
    channels = ["C0ONE", "C0TWO", "C0THREE", "C0FOUR"]
    with session_scope(runtime.engine) as session:
        for channel in channels:
            outbox.enqueue_message(session=session, channel=channel, now=utc_clock(),
                                   payload={"channel": channel, "text": f"digest {channel}"})
    lease = timedelta(seconds=1.5)
    a, b = replica(runtime, "replica-a", lease=lease), replica(runtime, "replica-b", lease=lease)
    fake_slack.stall("chat.postMessage", 1.0, times=3)
    worker = threading.Thread(target=a.run_once)
    worker.start()
    time.sleep(1.7)  # A's first call is done, its second in flight, its leases ran out
    b.run_once()
    worker.join(10)
    b.run_once()  # anything B could not take the first time
    a.run_once()

    counts = outbox_ids_posted(fake_slack)
    assert sorted(counts.values()) == [1, 1, 1, 1], counts
    with Session(runtime.engine) as session:
        assert {o.status for o in session.exec(select(Outbox))} == {"sent"}


def test_retry_after_seen_by_one_replica_holds_every_replica(runtime: Runtime,
                                                             fake_slack: FakeSlack) -> None:
    """Slack answers replica A 429 with Retry-After: 30 for a channel. Replica B holds off
    that channel for the 30 s as well (the pause is in the database), and other channels
    keep flowing; then the message goes out once."""
    clock = runtime.services.clock
    with session_scope(runtime.engine) as session:
        for channel in ("C0HOT", "C0HOT", "C0COLD"):
            outbox.enqueue_message(session=session, channel=channel, now=clock(),
                                   payload={"channel": channel, "text": "digest"})
    fake_slack.fail("chat.postMessage", 429, retry_after=30, channel="C0HOT")
    a, b = replica(runtime, "replica-a"), replica(runtime, "replica-b")
    a.run_once()
    b.run_once()
    clock.now += timedelta(seconds=29)  # type: ignore[attr-defined]
    a.run_once()
    b.run_once()
    calls = fake_slack.all_calls("chat.postMessage")
    assert [(c.params["channel"], c.status) for c in calls if c.params["channel"] == "C0HOT"
            ] == [("C0HOT", 429)]
    assert [c.status for c in calls if c.params["channel"] == "C0COLD"] == [200]
    clock.now += timedelta(seconds=1.5)  # type: ignore[attr-defined]
    b.run_once()
    a.run_once()
    assert sorted(outbox_ids_posted(fake_slack).values()) == [1, 1, 1]


def test_channel_pace_is_shared_when_replica_clocks_differ(
        fake_slack: FakeSlack, pg_url: str, care_config: CareConfig) -> None:
    """One replica's clock runs 5 s ahead of another's. When the one behind takes a slot
    (it leased a row before the other emptied the bucket), it must not wind the shared
    bucket back to its own time, or the next turn of the one ahead finds five seconds'
    worth of tokens again — every time — and the channel gets far more than Slack's pace."""
    base = datetime.now(UTC)
    ahead = make_runtime(fake_slack, pg_url, care_config, Clock(base + timedelta(seconds=5)))
    behind = make_runtime(fake_slack, pg_url, care_config, Clock(base))
    try:
        fast, slow = ahead.deliverer.delivery, behind.deliverer.delivery
        taken = 0
        for _ in range(5):  # no time passes: only one burst may go out
            taken += sum(fast.take_slot("C0PACE") == 0.0 for _ in range(fast.burst))
            taken += slow.take_slot("C0PACE") == 0.0
        assert taken == fast.burst
    finally:
        ahead.engine.dispose()
        behind.engine.dispose()


class SlowCrm:
    """A CRM webhook receiver on 127.0.0.1 whose first answers are slow; it records the
    ``Idempotency-Key`` of every request it gets."""

    def __init__(self, slow: int, seconds: float) -> None:
        self.keys: list[str] = []
        self.slow, self.seconds = slow, seconds
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    crm.keys.append(self.headers["Idempotency-Key"])
                    stall = crm.slow > 0
                    crm.slow -= 1
                if stall:
                    time.sleep(crm.seconds)
                body = b'{"case_id": "CASE-1"}'
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_dispatch_lease_that_ran_out_mid_batch_is_not_sent_twice(
        fake_slack: FakeSlack, pg_url: str, care_config: CareConfig,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same race on the dispatch queue (CRM webhooks, replies sent to customers through
    their source): replica A's batch outlives its lease behind a slow receiver, B takes the
    rows A has not reached, and A must not send them as well."""
    crm = SlowCrm(slow=3, seconds=1.0)
    data = care_config.model_dump(mode="json")
    data["workflow"] = {"escalation": {"channel": "C0SOCIAL911", "crm_webhook_url": crm.url}}
    monkeypatch.setenv("CAREBOT_CRM_SECRET", "crm-secret-0123456789")
    rt = make_runtime(fake_slack, pg_url, CareConfig.model_validate(data), utc_clock)
    try:
        with session_scope(rt.engine) as session:
            for escalation_id in range(1, 5):
                esc_store.enqueue(session=session, kind=esc_store.CRM_CASE, now=utc_clock(),
                                  ref_id=escalation_id, payload={"escalation": escalation_id})
        lease = timedelta(seconds=1.5)
        a = Dispatcher(rt.services.workflow, owner="replica-a", lease=lease)
        b = Dispatcher(rt.services.workflow, owner="replica-b", lease=lease)
        worker = threading.Thread(target=a.run_once)
        worker.start()
        time.sleep(1.7)  # A's first request is done, its second in flight, its leases ran out
        b.run_once()
        worker.join(10)
        b.run_once()
        a.run_once()
        assert sorted(Counter(crm.keys).values()) == [1, 1, 1, 1], crm.keys
        with session_scope(rt.engine) as session:
            assert {r.status for r in session.exec(select(Dispatch))} == {"sent"}
    finally:
        crm.server.shutdown()
        rt.engine.dispose()


# -- scheduled jobs ----------------------------------------------------------------------


def test_a_failed_job_run_is_retried_once_by_some_replica(pg_url: str) -> None:
    """The daily digest fails (the database restarted under it). The period is not lost:
    after the run's lease a replica runs it again — one of them, once — within its grace."""
    engine = make_engine(pg_url)
    migrate(engine)
    fire = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    clock = Clock(fire + timedelta(seconds=5))
    ran: list[tuple[str, datetime]] = []
    failures = [RuntimeError("server closed the connection unexpectedly")]

    def digest(owner: str) -> Callable[[datetime], None]:
        def run(fire_time: datetime) -> None:
            if failures:
                raise failures.pop()
            ran.append((owner, fire_time))
        return run

    replicas = []
    for i in range(3):
        scheduler = JobScheduler(engine, owner=f"replica-{i}", clock=clock)
        scheduler.add(Job("digest", CronTrigger(hour=9, timezone="UTC"), digest(f"replica-{i}"),
                          grace=timedelta(hours=2), lease=timedelta(minutes=10)))
        replicas.append(scheduler)
    try:
        for scheduler in replicas:
            scheduler.tick()
        assert ran == []  # the one that ran it failed
        for minutes in (5, 11, 12, 30):
            clock.now = fire + timedelta(minutes=minutes)
            threads = [threading.Thread(target=s.tick) for s in replicas]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert [t for _owner, t in ran] == [fire]
        with session_scope(engine) as session:
            [run] = jobs.runs(session=session, job="digest")
            assert run.status == "done" and run.error is None
    finally:
        engine.dispose()


# -- migrations --------------------------------------------------------------------------


def test_old_replica_starts_beside_a_schema_a_newer_version_migrated(pg_url: str) -> None:
    """Rolling deploy: a new version migrated the database (a revision this code does not
    know). An old replica restarting meanwhile, or after a rollback, must still start."""
    engine = make_engine(pg_url)
    try:
        migrate(engine)
        with engine.begin() as conn:
            heads = [r for (r,) in conn.execute(text("SELECT version_num FROM alembic_version"))]
            newest = max(heads)
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future' "
                              "WHERE version_num = :v"), {"v": newest})
        migrate(engine)  # the old replica starting
        with engine.connect() as conn:
            after = {r for (r,) in conn.execute(text("SELECT version_num FROM alembic_version"))}
        assert "9999_from_the_future" in after and newest not in after
    finally:
        engine.dispose()


# -- real replica processes --------------------------------------------------------------


def cards_posted(fake_slack: FakeSlack) -> Counter[int]:
    return Counter(c.params["metadata"]["event_payload"]["mention_id"]
                   for c in fake_slack.ok_calls("chat.postMessage")
                   if (c.params.get("metadata") or {}).get("event_type") == "carebot_card")


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may restart."""
    server = PostgresServer()
    if server.bin_dir is None:
        pytest.skip("PostgreSQL is not installed")
    server.start()
    yield server
    server.stop()


def click_claim(node: Replica, mention_id: int, user: str, channel: str, ts: str) -> int:
    body = interaction_body(block_action(CardAction.CLAIM, CardRef(m=mention_id).dump(),
                                         user=user, channel=channel, message_ts=ts))
    return httpx.post(f"{node.url}/slack/events", content=body, timeout=10,
                      headers=signed_headers(SIGNING_SECRET, body)).status_code


def test_two_replicas_through_a_postgres_restart_and_a_claim_race(
        own_postgres: PostgresServer, fake_slack: FakeSlack, tmp_path: Path) -> None:
    """PostgreSQL restarts under two running replicas: they reconnect on their own and every
    mention, before and after, is posted exactly once. Then clicks on one card reach both
    replicas at once: one claim wins, the card shows it, every other clicker is told."""
    url = create_database(own_postgres.admin_url)
    nodes = start_replicas(2, url, fake_slack, tmp_path)
    try:
        def mentions(lo: int, hi: int) -> list[dict[str, str]]:
            return [{"source": "twitter", "id": f"pg-{i}", "author": f"user{i}",
                     "text": f"{CASE} (#{i})"} for i in range(lo, hi)]

        post_batch(nodes, 0, mentions(0, 10))
        eventually(lambda: len(cards_posted(fake_slack)) == 10, timeout=30, interval=0.2)
        assert own_postgres.root is not None
        own_postgres._run("pg_ctl", "-D", str(own_postgres.root / "data"),
                          "-l", str(own_postgres.root / "log"),
                          "-m", "fast", "-w", "restart")
        # Every pooled connection of both replicas is now dead.
        for start, lo in enumerate(range(10, 30, 5)):
            post_batch(nodes, start, mentions(lo, lo + 5))
        eventually(lambda: len(cards_posted(fake_slack)) == 30, timeout=30, interval=0.2)
        for node in nodes:
            assert httpx.get(f"{node.url}/readyz", timeout=5).status_code == 200

        [card] = [c for c in fake_slack.ok_calls("chat.postMessage")
                  if c.params["metadata"]["event_payload"].get("mention_id") == 1]
        channel, ts = card.params["channel"], fake_slack.ts_of(card)
        users = [f"U0CLICK{i}" for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda iu: click_claim(nodes[iu[0] % 2], 1, iu[1],
                                                            channel, ts), enumerate(users)))
        assert statuses == [200] * len(users)
        refusals = fake_slack.wait_for("chat.postEphemeral", len(users) - 1, timeout=15)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                winner = conn.execute(text(
                    "SELECT claimed_by FROM engagement WHERE mention_id = 1")).scalar_one()
                claims = conn.execute(text(
                    "SELECT count(*) FROM audit_log WHERE mention_id = 1 "
                    "AND action = 'claimed'")).scalar_one()
        finally:
            engine.dispose()
        assert winner in users and claims == 1
        assert sorted(r.params["user"] for r in refusals) == sorted(set(users) - {winner})
        assert all(f"Already claimed by <@{winner}>" in r.params["text"] for r in refusals)
        [update] = fake_slack.wait_for("chat.update", where=lambda c: c.params["ts"] == ts)
        assert f"Claimed by <@{winner}>" in json.dumps(update.params["blocks"])

        time.sleep(3.5)  # past every lease: a late duplicate would show up now
        counts = cards_posted(fake_slack)
        assert len(counts) == 30 and max(counts.values()) == 1, counts
        assert len([c for c in fake_slack.ok_calls("chat.update") if c.params["ts"] == ts]) == 1
        assert all(node.proc.poll() is None for node in nodes)
    finally:
        for node in nodes:
            node.stop()
