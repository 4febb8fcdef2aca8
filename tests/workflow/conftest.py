"""Fixtures for the workflow scenarios: a bot with a controllable clock and a
workflow config (escalation channel, user group, permissions, CRM webhook)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import build_runtime
from bot.classify.factory import rules_classifier
from bot.config import CareConfig, load_settings
from tests.harness.bot_server import (
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


class Clock:
    """A clock the test moves by hand; the bot reads it for every timestamp."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()
        #: Seconds the helpers move the clock before each click or submission, so
        #: the outbox's per-channel pacing (which reads this clock) refills.
        #: Tests that assert exact durations leave it at 0 and move it themselves.
        self.step = 0.0

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def paced(clock: Clock) -> None:
    """Each reading of the clock moves it 3 s on, so Slack pacing and leases advance;
    for modules that assert no exact durations (``pytestmark = usefixtures("paced")``)."""
    clock.step = 3.0


@pytest.fixture
def workflow_config(care_config: CareConfig) -> CareConfig:
    data = care_config.model_dump(mode="json")
    data["workflow"] = {
        "escalation": {"channel": "C0SOCIAL911", "user_group": "S0SOCIAL911"},
        "permissions": {"escalate": ["S0ESCALATORS"], "resolve": [], "admin": ["U0LEAD"]},
    }
    return CareConfig.model_validate(data)


BotFactory = Callable[..., BotServer]


@pytest.fixture
def make_bot(fake_slack: FakeSlack, database_url: str, clock: Clock,
             workflow_config: CareConfig) -> Iterator[BotFactory]:
    """Build the bot over HTTP with ``clock`` and a config (``workflow_config`` by default)."""
    started: list[BotServer] = []

    def build(config: CareConfig | None = None, **runtime_kwargs: Any) -> BotServer:
        settings = load_settings(
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
            ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url,
            database_url=database_url, _env_file=None,
        )
        config = config or workflow_config
        runtime = build_runtime(settings, config=config, classifier=rules_classifier(config),
                                clock=clock, poll=0.1, **runtime_kwargs)
        server = start_bot_server(runtime)
        started.append(server)
        return server

    yield build
    for server in started:
        server.stop()
        server.runtime.engine.dispose()


@pytest.fixture
def wbot(make_bot: BotFactory, fake_slack: FakeSlack) -> BotServer:
    fake_slack.usergroups["S0ESCALATORS"] = ["U0ESCALATOR"]
    return make_bot()
