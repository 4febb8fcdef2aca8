"""A bot runtime without its HTTP server, on a clock the test moves: for driving the
outbox worker step by step (crashes, outages, waiting for a card)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.app import build_runtime
from bot.classify.factory import rules_classifier
from bot.config import load_settings
from tests.harness.bot_server import BOT_TOKEN, INGEST_TOKEN, SIGNING_SECRET


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def runtime(fake_slack, database_url, care_config):
    settings = load_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                             ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url,
                             database_url=database_url, _env_file=None)
    clock = Clock()
    rt = build_runtime(settings, config=care_config, classifier=rules_classifier(care_config),
                       clock=clock)
    rt.clock = clock
    yield rt
    rt.engine.dispose()
