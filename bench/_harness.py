"""Shared set-up for the Slack-side benchmarks: the real bot over HTTP against the
local fake Slack Web API (the same harness the tests use), on SQLite or PostgreSQL."""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import build_runtime  # noqa: E402
from bot.classify.factory import rules_classifier  # noqa: E402
from bot.config import load_care_config, load_settings  # noqa: E402
from tests.harness.bot_server import (  # noqa: E402
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack  # noqa: E402


@contextmanager
def running_bot(*, rate: float = 1.0, database_url: str | None = None,
                poll: float = 0.2) -> Iterator[tuple[BotServer, FakeSlack]]:
    fake = FakeSlack()
    server, _thread = fake.serve()
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{tmp}/bench.db"
        settings = load_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                                 ingest_token=INGEST_TOKEN, slack_api_url=fake.url,
                                 database_url=url, carebot_slack_rate=rate, _env_file=None)
        config = load_care_config(None)
        runtime = build_runtime(settings, config=config, classifier=rules_classifier(config),
                                poll=poll)
        bot = start_bot_server(runtime)
        try:
            yield bot, fake
        finally:
            bot.stop()
            runtime.engine.dispose()
            server.shutdown()
            server.server_close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, int(round(q / 100 * len(ordered) + 0.5)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def bot_process(*, rate: float = 50.0) -> Iterator[tuple[str, FakeSlack]]:
    """The bot as its own process (``carebot run``), as deployed: client threads in the
    benchmark then do not share a GIL with the server they measure."""
    import os
    import socket
    import subprocess
    import time

    import httpx

    fake = FakeSlack()
    server, _thread = fake.serve()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", tmp),
               "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "INGEST_TOKEN": INGEST_TOKEN, "SLACK_API_URL": fake.url,
               "DATABASE_URL": f"sqlite:///{tmp}/bench.db", "CAREBOT_MODEL": "rules",
               "CAREBOT_SLACK_RATE": str(rate), "CAREBOT_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("bot process did not start")
                time.sleep(0.1)
            yield url, fake
        finally:
            proc.terminate()
            proc.wait(10)
            server.shutdown()
            server.server_close()
