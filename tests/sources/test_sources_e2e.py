"""End to end: sources polled by the scheduler, cards in the fake Slack, ``/care sources``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
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
from tests.harness.signing import command_body
from tests.sources.conftest import Clock, with_sources
from tests.sources.server import SourceServer


@pytest.fixture
def listening_bot(fake_slack: FakeSlack, database_url: str, care_config: CareConfig,
                  source_server: SourceServer, clock: Clock) -> Iterator[BotServer]:
    """The bot over HTTP with two Reddit connectors (Atom feed + JSON search) and a
    broken Stack Exchange; the test drives the scheduler with its own clock."""
    config = with_sources(care_config, [
        {"type": "rss", "name": "reddit-feed", "feeds": [f"{source_server.url}/search.rss"],
         "poll_seconds": 120},
        {"type": "reddit", "base_url": source_server.url, "queries": ["nimbus"],
         "poll_seconds": 120},
        {"type": "stackexchange", "base_url": source_server.url, "queries": ["nimbus"],
         "poll_seconds": 120},
    ])
    settings = load_settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url, database_url=database_url,
        _env_file=None)
    runtime = build_runtime(settings, config=config, classifier=rules_classifier(config),
                            clock=clock, poll=0.2)
    runtime.scheduler.start = lambda: None  # type: ignore[method-assign] - tests tick
    server = start_bot_server(runtime)
    yield server
    server.stop()
    runtime.engine.dispose()


def card_texts(calls: list[Any]) -> list[str]:
    return [json.dumps(call.params) for call in calls]


def test_a_mention_found_by_two_connectors_is_posted_once(
        listening_bot: BotServer, fake_slack: FakeSlack, source_server: SourceServer,
        clock: Clock) -> None:
    source_server.add("/search.rss", SourceServer.file("reddit_search.atom",
                                                       "application/atom+xml"))
    source_server.add("/search.json", SourceServer.file("reddit_search_p1.json"))
    source_server.add("/2.3/search/advanced", SourceServer.json({}, 503))

    ran = listening_bot.runtime.scheduler.tick(clock.now)
    assert sorted(name for name, _ in ran if name.startswith("source:")) == [
        "source:reddit", "source:reddit-feed", "source:stackexchange"]
    posts = fake_slack.wait_for("chat.postMessage", 2)
    time.sleep(0.5)  # give a wrongly duplicated card the chance to show up
    posts = fake_slack.ok_calls("chat.postMessage")
    texts = card_texts(posts)
    assert len(posts) == 2
    assert sum("stuck on boot logo" in t for t in texts) == 1
    assert sum("enterprise plan" in t for t in texts) == 1
    channels = sorted(call.params["channel"] for call in posts)
    assert channels == ["C0SALES", "C0SUPPORT"]

    # The next period: the same items again are recognised; nothing new is posted.
    clock.advance(seconds=121)
    listening_bot.runtime.scheduler.tick(clock.now)
    time.sleep(0.5)
    assert len(fake_slack.ok_calls("chat.postMessage")) == 2


def test_care_sources_shows_health_errors_and_drops(
        listening_bot: BotServer, fake_slack: FakeSlack, source_server: SourceServer,
        clock: Clock) -> None:
    source_server.add("/search.rss", SourceServer.file("reddit_search.atom",
                                                       "application/atom+xml"))
    source_server.add("/search.json", SourceServer.file("reddit_search_p1.json"))
    source_server.add("/2.3/search/advanced", SourceServer.json({"error": "down"}, 429,
                                                                {"Retry-After": "600"}))
    listening_bot.runtime.scheduler.tick(clock.now)

    response_url = f"{fake_slack.url}response/T0FAKE/123/abc"
    ack = listening_bot.post_slack(command_body("/care", "sources",
                                                response_url=response_url))
    assert ack.status_code == 200
    [reply] = fake_slack.wait_for("response/T0FAKE/123/abc")
    text = reply.params["text"]
    assert reply.params["response_type"] == "ephemeral"
    lines = text.splitlines()
    assert lines[0] == "*Listening sources*"
    reddit = lines[lines.index(next(line for line in lines if "*reddit* (reddit)" in line)) + 1]
    assert "— ok; last success 2025-11-23 12:30 UTC" in text
    assert reddit.strip() == "fetched 2, ingested 1, already seen 0, duplicates 1"
    assert "*stackexchange* (stackexchange) — backing off" in text
    assert "HTTP 429 rate limited` (1 in a row)" in text
    assert "next try after 2025-11-23 12:40 UTC" in text
    # /care help lists the subcommand.
    assert "/care sources" in listening_bot.post_slack(command_body("/care", "help")).text
