"""Three replicas on one PostgreSQL: a burst, a SIGKILL mid-burst, and still every
mention is posted exactly once and every scheduled period runs once."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.harness.bot_server import BOT_TOKEN, INGEST_TOKEN, SIGNING_SECRET, eventually
from tests.harness.fake_slack import FakeSlack
from tests.harness.postgres import create_database

pytestmark = pytest.mark.postgres

TEXTS = [
    "my laptop won't boot since the update, help",
    "How do I exclude a folder from the scan?",
    "worst service ever, never again #fail",
    "love the new sync, thank you!",
    "looking to buy 400 seats, send a quote please",
    "feature request: please add dark mode",
    "phishing emails pretending to be renewal notices, fake key sold on ebay",
    "saw a nice cloud today",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (log_dir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--host", "127.0.0.1", "--port",
             str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            cwd=log_dir)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture
def replicas(fake_slack: FakeSlack, postgres_admin_url: str, tmp_path: Path):
    url = create_database(postgres_admin_url)
    started = start_replicas(3, url, fake_slack, tmp_path)
    try:
        yield started, url
    finally:
        for replica in started:
            replica.stop()


def start_replicas(count: int, url: str, fake_slack: FakeSlack, tmp_path: Path) -> list[Replica]:
    """``count`` ``carebot run`` processes on ``url``, each ready (all stopped on failure)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "INGEST_TOKEN": INGEST_TOKEN, "SLACK_API_URL": fake_slack.url, "DATABASE_URL": url,
        "CAREBOT_MODEL": "rules", "CAREBOT_SLACK_RATE": "25", "CAREBOT_LEASE_SECONDS": "3",
        "CAREBOT_LOG_LEVEL": "WARNING",
    }
    started = [Replica(f"replica-{i}", env, tmp_path) for i in range(count)]
    try:
        for node in started:
            node.wait_ready()
    except BaseException:
        for node in started:
            node.stop()
        raise
    return started


def post_batch(replicas: list[Replica], start: int, batch: list[dict]) -> None:
    """POST a batch, moving on to the next replica when one is gone (ingest is idempotent)."""
    for attempt in range(len(replicas) * 2):
        replica = replicas[(start + attempt) % len(replicas)]
        try:
            response = httpx.post(f"{replica.url}/ingest", json=batch, timeout=10,
                                  headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
            if response.status_code == 202:
                return
        except httpx.HTTPError:
            continue
    raise AssertionError("no replica accepted the batch")


def test_burst_with_a_replica_killed_mid_burst(replicas, fake_slack: FakeSlack) -> None:
    nodes, url = replicas
    mentions = [{"source": "twitter", "id": f"burst-{i}", "author": f"user{i}",
                 "text": TEXTS[i % len(TEXTS)] + f" (#{i})"} for i in range(300)]
    batches = [mentions[i:i + 10] for i in range(0, len(mentions), 10)]
    counter = itertools.count()
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = []
        for n, batch in enumerate(batches):
            futures.append(pool.submit(post_batch, nodes, next(counter), batch))
            if n == len(batches) // 3:
                time.sleep(0.3)
                nodes[0].kill()  # mid-burst: holding leases on mentions and outbox rows
        for future in futures:
            future.result()

    def posted() -> Counter:
        return Counter(c.params["metadata"]["event_payload"]["mention_id"]
                       for c in fake_slack.ok_calls("chat.postMessage")
                       if (c.params.get("metadata") or {}).get("event_type") == "carebot_card")

    eventually(lambda: len(posted()) == 300, timeout=90, interval=0.5)
    time.sleep(4)  # past every lease: a late duplicate would show up now
    counts = posted()
    assert len(counts) == 300
    assert [m for m, n in counts.items() if n > 1] == []

    engine = create_engine(url)
    with engine.connect() as conn:
        unposted = conn.execute(text(
            "SELECT count(*) FROM slack_post WHERE ts IS NULL")).scalar_one()
        pending = conn.execute(text(
            "SELECT count(*) FROM outbox WHERE status <> 'sent'")).scalar_one()
        new = conn.execute(text("SELECT count(*) FROM mention WHERE stage = 'new'")).scalar_one()
        runs = conn.execute(text(
            "SELECT job, fire_time, count(*) FROM job_run GROUP BY job, fire_time")).all()
        owners = conn.execute(text("SELECT count(DISTINCT owner) FROM job_run")).scalar_one()
    engine.dispose()
    assert (unposted, pending, new) == (0, 0, 0)
    # Scheduled jobs ran (the replicas tick every few seconds), each period once.
    assert runs and all(n == 1 for _job, _fire, n in runs)
    assert owners >= 1
