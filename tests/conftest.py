"""Shared fixtures: one each for the fake Slack, the database and the bot server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bot.app import build_runtime  # noqa: E402
from bot.classify.factory import rules_classifier  # noqa: E402
from bot.config import CareConfig, load_care_config, load_settings  # noqa: E402
from storage.db import Engine, make_engine, migrate  # noqa: E402
from tests.harness.bot_server import (  # noqa: E402
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack  # noqa: E402
from tests.harness.postgres import PostgresServer, create_database  # noqa: E402
from tests.sources.server import SourceServer  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    server, thread = fake.serve()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def source_server() -> Iterator[SourceServer]:
    """A local stand-in for the listening sources' APIs (tests/sources/server.py)."""
    server = SourceServer()
    http = server.serve()
    yield server
    http.shutdown()
    http.server_close()


@pytest.fixture
def care_config() -> CareConfig:
    return load_care_config(None)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server for the whole session (started here unless one is given)."""
    given = os.environ.get("CAREBOT_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    server = PostgresServer()
    if server.bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql); "
                    "make test and .ci/run install it")
    server.start()
    yield server.admin_url
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that stores data runs on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'carebot.db'}"
    return create_database(request.getfixturevalue("postgres_admin_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def bot(fake_slack: FakeSlack, database_url: str, care_config: CareConfig) -> Iterator[BotServer]:
    """The bot over HTTP against the fake Slack, with the rules classifier."""
    settings = load_settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url, database_url=database_url,
        _env_file=None,
    )
    runtime = build_runtime(settings, config=care_config,
                            classifier=rules_classifier(care_config), poll=0.2)
    server = start_bot_server(runtime)
    yield server
    server.stop()
    runtime.engine.dispose()
