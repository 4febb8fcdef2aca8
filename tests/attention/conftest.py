"""A bot with a controllable clock and the attention features configured."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import build_runtime
from bot.classify.factory import rules_classifier
from bot.config import CareConfig, load_settings
from bot.domain import Prediction, Sentiment
from tests.harness.bot_server import (
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack

T0 = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
ALERTS = "C0ALERTS"
ONCALL = "S0ONCALL"
ADMIN = "U0ADMIN"


class Clock:
    """A clock the test sets by hand, which then runs on in real time.

    Running on matters: the outbox paces Slack calls by scheduling retries a
    second or so after "now", and a frozen clock would never reach them.
    """

    def __init__(self, now: datetime) -> None:
        self.set(now)

    def __call__(self) -> datetime:
        return self.base + timedelta(seconds=time.monotonic() - self.set_at)

    def set(self, now: datetime) -> datetime:
        self.base, self.set_at = now, time.monotonic()
        return now

    def at(self, **delta: float) -> datetime:
        """Move to ``T0 + delta`` (and return exactly that time)."""
        return self.set(T0 + timedelta(**delta))


class SentimentRules:
    """The rules classifier plus a keyword sentiment (the rules score none)."""

    NEGATIVE = ("won't", "not working", "worst", "hate", "broken", "help")
    POSITIVE = ("love", "thanks", "great")

    def __init__(self, config: CareConfig) -> None:
        self.rules = rules_classifier(config)

    def predict(self, texts: Sequence[str], langs: Sequence[str | None] | None = None
                ) -> list[Prediction]:
        out = []
        for text, pred in zip(texts, self.rules.predict(texts, langs), strict=True):
            low = text.lower()
            if any(w in low for w in self.NEGATIVE):
                sentiment = Sentiment.NEGATIVE
            elif any(w in low for w in self.POSITIVE):
                sentiment = Sentiment.POSITIVE
            else:
                sentiment = Sentiment.NEUTRAL
            out.append(replace(pred, sentiment=sentiment))
        return out


@pytest.fixture
def attention_config(care_config: CareConfig) -> CareConfig:
    data: dict[str, Any] = care_config.model_dump(mode="json")
    data["attention"] = {
        "priority": {"alert_channel": ALERTS, "alert_threshold": 60},
        "sla": {"oncall_group": ONCALL, "entitled_escalation_minutes": 10,
                "check_seconds": 60},
        "watch": {"admins": [ADMIN]},
        "monitoring_days": 7,
    }
    return CareConfig.model_validate(data)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def make_bot(fake_slack: FakeSlack, database_url: str, attention_config: CareConfig,
             clock: Clock) -> Iterator[Callable[..., BotServer]]:
    """Start the bot (HTTP, pipeline and outbox workers) on the test clock.

    The background scheduler timer is not started: tests drive
    ``runtime.scheduler.tick()`` themselves.
    """
    servers: list[BotServer] = []

    def start(config: CareConfig | None = None) -> BotServer:
        cfg = config or attention_config
        settings = load_settings(
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
            ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url,
            database_url=database_url, _env_file=None)
        runtime = build_runtime(settings, config=cfg, classifier=SentimentRules(cfg),
                                clock=clock, poll=0.1)
        server = start_bot_server(runtime, start_workers=False)
        runtime.workers.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        server.runtime.engine.dispose()
