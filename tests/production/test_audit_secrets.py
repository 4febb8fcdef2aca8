"""Secrets that are not Slack's: a listening source's API key and a CRM webhook token
ride in URL query strings, which httpx writes into its request log lines and into the
text of its exceptions. The log redactor must remove them whoever logs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from bot.app import build_runtime
from bot.classify.factory import rules_classifier
from bot.cli import _setup_logging
from bot.config import CareConfig, load_settings
from bot.sources.registry import build_source
from tests.harness.bot_server import (
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import command_body
from tests.sources.conftest import with_sources
from tests.sources.server import Answer, SourceServer

SOURCE_KEY = "se-key-Q9x7vT2m"
CRM_TOKEN = "crm-hook-token-5d1f"


def test_source_api_key_in_a_query_string_is_redacted_from_httpx_logs(
        root_logging: None, capsys: pytest.CaptureFixture[str], care_config: CareConfig,
        source_server: SourceServer) -> None:
    # What `carebot run` does: the configured secrets do not include source credentials.
    _setup_logging(load_settings(slack_bot_token="xoxb-1-2-abc", ingest_token="ingest-abcdef",
                                 carebot_log_level="INFO", _env_file=None))
    config = with_sources(care_config, [{"type": "stackexchange", "queries": ["nimbus"],
                                         "base_url": source_server.url,
                                         "credentials": {"key": "SE_KEY"}}])
    source = build_source(config, config.sources[0], environ={"SE_KEY": SOURCE_KEY})
    source_server.add("/2.3/search/advanced", SourceServer.file("se_search_p1.json"))
    try:
        source.fetch("search:nimbus", None)
    finally:
        source.close()
    assert source_server.requests[-1].query["key"] == SOURCE_KEY  # it was sent...
    err = capsys.readouterr().err
    assert "HTTP Request: GET" in err  # ...and httpx logged the request line...
    assert SOURCE_KEY not in err  # ...without the key


def test_webhook_token_in_an_httpx_exception_is_redacted(
        root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    _setup_logging(load_settings(slack_bot_token="xoxb-1-2-abc", ingest_token="ingest-abcdef",
                                 _env_file=None))
    request = httpx.Request("POST", f"https://crm.example/hooks/cases?api_token={CRM_TOKEN}"
                                    "&v=2")
    response = httpx.Response(502, request=request)
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError:
        logging.getLogger("carebot.dispatch").exception("crm webhook failed")
    err = capsys.readouterr().err
    assert "crm.example/hooks/cases?api_token=" in err and "&v=2" in err
    assert CRM_TOKEN not in err


# -- /care sources shows each source's last error --------------------------------------


@pytest.fixture
def listening_bot(fake_slack: FakeSlack, database_url: str, care_config: CareConfig,
                  source_server: SourceServer) -> Iterator[BotServer]:
    """A private feed whose URL carries basic-auth credentials, and a Stack Exchange
    whose API answers with an error name of its choosing."""
    feed = source_server.url.replace("http://", f"http://reader:{FEED_PASSWORD}@")
    config = with_sources(care_config, [
        {"type": "rss", "name": "private-feed", "feeds": [f"{feed}/private.rss"]},
        {"type": "rss", "name": "down-feed", "feeds": [f"{feed}/down.rss"]},
        {"type": "stackexchange", "base_url": source_server.url, "queries": ["nimbus"]},
    ])
    settings = load_settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url, database_url=database_url,
        _env_file=None)
    runtime = build_runtime(settings, config=config, classifier=rules_classifier(config),
                            poll=0.2)
    # the test ticks the scheduler itself
    runtime.scheduler.start = lambda: None  # type: ignore[method-assign]
    server = start_bot_server(runtime)
    yield server
    server.stop()
    runtime.engine.dispose()


FEED_PASSWORD = "feedpass-7Hq2"


def test_care_sources_never_shows_feed_credentials_or_pings(
        listening_bot: BotServer, fake_slack: FakeSlack, source_server: SourceServer,
        root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    _setup_logging(load_settings(slack_bot_token=BOT_TOKEN, ingest_token=INGEST_TOKEN,
                                 _env_file=None))
    source_server.add("/private.rss", Answer(200, b"<html>login</html>",
                                             {"Content-Type": "text/html"}))
    source_server.add("/down.rss", Answer(500, b"oops"))
    source_server.add("/2.3/search/advanced", SourceServer.json(
        {"error_id": 400, "error_name": "<!channel> <https://evil.example|click>"}))
    listening_bot.runtime.scheduler.tick(listening_bot.runtime.services.clock())

    response_url = f"{fake_slack.url}response/T0FAKE/1/sources"
    listening_bot.post_slack(command_body("/care", "sources", response_url=response_url))
    [reply] = fake_slack.wait_for("response/T0FAKE/1/sources")
    shown = reply.params["text"]
    assert shown.count("last error") == 3, shown
    assert FEED_PASSWORD not in shown
    assert "<!channel>" not in shown and "<https://evil" not in shown
    assert "&lt;!channel&gt;" in shown  # the error is still shown, harmlessly
    assert FEED_PASSWORD not in capsys.readouterr().err  # nor logged
