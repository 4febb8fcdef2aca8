"""Observability: /metrics in Prometheus text format, redacted structured logs, /readyz."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import build_runtime
from bot.classify.factory import rules_classifier
from bot.cli import _setup_logging
from bot.config import CareConfig, load_settings
from bot.errors import ConfigError, SourceUnavailable
from bot.logs import REDACTED, make_handler
from bot.metrics import Metrics
from bot.services import Services
from bot.sources.base import Page
from bot.sources.poller import Poller
from storage.db import Engine, session_scope
from storage.observability import queue_snapshot
from tests.harness.bot_server import (
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    eventually,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack

CASE = {"source": "twitter", "id": "obs-1", "author": "dana_k",
        "text": "my laptop won't boot since the update, help"}
OTHER = {"source": "reddit", "id": "obs-2", "author": "sam",
         "text": "my laptop won't boot since the update either, help"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(bot: BotServer) -> Samples:
    response = bot.http.get(f"{bot.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the series that carry ``labels`` (0 when none do)."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)


# -- /metrics ------------------------------------------------------------------


def test_metrics_count_ingest_classification_and_posting(bot: BotServer,
                                                         fake_slack: FakeSlack) -> None:
    replica = bot.runtime.services.metrics.replica
    before = scrape(bot)
    assert value(before, "carebot_mentions_ingested_total") == 0
    assert value(before, "carebot_database_up", replica=replica) == 1

    assert bot.ingest([CASE, OTHER]).json()["accepted"] == 2
    assert bot.ingest(CASE).json()["duplicates"] == 1
    posts = fake_slack.wait_for("chat.postMessage", 2)
    # Counted once the outbox has recorded the posts (just after Slack answered).
    after = eventually(lambda: (s := scrape(bot))
                       and value(s, "carebot_slack_posted_total") == 2 and s)

    assert value(after, "carebot_mentions_ingested_total", source="twitter",
                 replica=replica) == 1
    assert value(after, "carebot_mentions_ingested_total", source="reddit") == 1
    assert value(after, "carebot_mentions_duplicate_total") == 1
    assert value(after, "carebot_mentions_classified_total", category="case",
                 method="rules") == 2
    channels = {p.params["channel"] for p in posts}
    kind = "triage" if channels == {bot.runtime.config.triage_channel} else "department"
    assert value(after, "carebot_slack_posted_total", kind="post_card", channel_kind=kind) == 2
    assert value(after, "carebot_ingest_to_post_seconds_count") == 2
    assert value(after, "carebot_ingest_to_post_seconds_sum") > 0
    # Queue depths come from the database at scrape time.
    assert value(after, "carebot_queue_mentions", stage="new") == 0
    assert value(after, "carebot_queue_mentions", stage="routed") == 2
    assert value(after, "carebot_queue_outbox", status="sent") == 2
    assert value(after, "carebot_queue_outbox", status="pending") == 0
    assert value(after, "carebot_slack_api_errors_total") == 0


def test_metrics_count_slack_errors_by_method_and_status(bot: BotServer,
                                                         fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", 500, times=1)
    bot.ingest(CASE)
    fake_slack.wait_for("chat.postMessage")  # the retry, after the 500
    samples = eventually(lambda: (s := scrape(bot))
                         and value(s, "carebot_slack_posted_total") == 1 and s)
    assert value(samples, "carebot_slack_api_errors_total", method="chat.postMessage",
                 status="500") == 1
    assert value(samples, "carebot_queue_outbox", status="sent") == 1


class FailingSource:
    name = "rss"

    def queries(self) -> list[str]:
        return ["https://status.example.com/feed"]

    def fetch(self, query: str, cursor: str | None) -> Page:
        raise SourceUnavailable("rss: 503 from status.example.com")

    def close(self) -> None:
        return None


def test_source_errors_are_counted_and_read_back_from_the_database(
        engine: Engine, care_config: CareConfig) -> None:
    metrics = Metrics(replica="r1")

    def snapshot():  # type: ignore[no-untyped-def]
        with session_scope(engine) as session:
            return queue_snapshot(session=session)

    metrics.watch(snapshot)
    services = Services(engine=engine, config=care_config,
                        classifier=rules_classifier(care_config), metrics=metrics)
    result = Poller(services, {"rss": FailingSource()}, base_backoff=0).poll("rss")
    assert result.status == "failed"
    text = metrics.exposition()[0].decode()
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert value(samples, "carebot_source_errors_total", source="rss", replica="r1") == 1
    assert value(samples, "carebot_source_consecutive_failures", source="rss") == 1


def test_each_runtime_has_its_own_registry() -> None:
    a, b = Metrics(replica="a"), Metrics(replica="b")
    a.ingested({"twitter": 3})
    text_b = b.exposition()[0].decode()
    assert 'carebot_mentions_ingested_total{replica="a"' not in text_b
    assert 'carebot_mentions_ingested_total{replica="a",source="twitter"} 3.0' in (
        a.exposition()[0].decode())


# -- /readyz -----------------------------------------------------------------------


@pytest.mark.parametrize("database_url",
                         [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_readyz_is_503_while_the_database_is_unreachable(
        bot: BotServer, database_url: str, postgres_admin_url: str) -> None:
    assert bot.http.get(f"{bot.url}/readyz").status_code == 200
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    response = bot.http.get(f"{bot.url}/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    # The process itself is alive, and /metrics still answers, saying the DB is down.
    assert bot.http.get(f"{bot.url}/healthz").status_code == 200
    assert value(scrape(bot), "carebot_database_up") == 0


# -- logs ------------------------------------------------------------------------

SECRETS = {
    "bot": "xoxb-1234-5678-abcdefSECRET",
    "signing": "8f14e45fceea167a5a36dedd4bea2543",
    "app": "xapp-1-A0-123-deadbeefSECRET",
    "ingest": "ingest-token-0123456789",
}


def test_json_log_lines_redact_secrets_from_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = make_handler(fmt="json", secrets=[SECRETS["signing"], SECRETS["ingest"]],
                           stream=stream)
    logger = logging.getLogger("carebot.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("auth with %s failed, ingest %s, unknown xoxp-999-888-777abc",
                       SECRETS["bot"], SECRETS["ingest"], extra={"outbox_id": 7})
        try:
            raise RuntimeError(f"connect postgresql://carebot:hunter2pass@db:5432/care "
                               f"Authorization: Bearer {SECRETS['ingest']} {SECRETS['signing']}")
        except RuntimeError:
            logger.exception("database down, app token %s", SECRETS["app"])
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
    assert lines[0]["logger"] == "carebot.test.redaction" and lines[0]["outbox_id"] == 7
    assert lines[0]["message"].startswith(f"auth with {REDACTED} failed, ingest {REDACTED}")
    assert "RuntimeError" in lines[1]["exception"]
    assert "postgresql://carebot:[REDACTED]@db:5432/care" in lines[1]["exception"]
    everything = stream.getvalue()
    for secret in [*SECRETS.values(), "hunter2pass", "xoxp-999"]:
        assert secret not in everything


def test_cli_logging_is_json_and_redacted_for_every_logger(
        root_logging: None, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = load_settings(slack_bot_token=SECRETS["bot"],
                             slack_signing_secret=SECRETS["signing"],
                             slack_app_token=SECRETS["app"], ingest_token=SECRETS["ingest"],
                             carebot_log_format="json",
                             database_url="postgresql://care:Db-pass-4711@db:5432/care",
                             _env_file=None)
    _setup_logging(settings)
    # Third-party loggers (uvicorn, slack_sdk) go through the same handler.
    logging.getLogger("uvicorn.error").warning("request with token=%s", SECRETS["ingest"])
    logging.getLogger("slack_sdk.web").error("signing secret %s", SECRETS["signing"])
    # The database password alone, outside any URL (a driver's DSN in an error).
    logging.getLogger("sqlalchemy.pool").error("connect: password=Db-pass-4711 host=db")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {line["logger"] for line in lines} >= {"uvicorn.error", "slack_sdk.web",
                                                 "sqlalchemy.pool"}
    assert all(REDACTED in line["message"] for line in lines)
    assert SECRETS["ingest"] not in err and SECRETS["signing"] not in err
    assert "Db-pass-4711" not in err


def test_log_format_and_encoder_backend_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="CAREBOT_LOG_FORMAT: Input should be 'text' or 'json'"):
        load_settings(carebot_log_format="xml", _env_file=None)
    with pytest.raises(ConfigError, match="CAREBOT_ENCODER_BACKEND: Input should be 'auto'"):
        load_settings(carebot_encoder_backend="gpu", _env_file=None)


def test_metrics_token_guards_metrics_when_set(fake_slack: FakeSlack, tmp_path,
                                               care_config: CareConfig) -> None:
    """With METRICS_TOKEN set, /metrics answers only the right bearer token; the other
    endpoints keep their own rules (health probes stay open)."""
    settings = load_settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        ingest_token=INGEST_TOKEN, metrics_token="scrape-secret-123456",
        slack_api_url=fake_slack.url, database_url=f"sqlite:///{tmp_path / 'm.db'}",
        _env_file=None,
    )
    runtime = build_runtime(settings, config=care_config,
                            classifier=rules_classifier(care_config), poll=0.2)
    server = start_bot_server(runtime)
    try:
        url = f"{server.url}/metrics"
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {INGEST_TOKEN}"}):
            denied = server.http.get(url, headers=headers)
            assert denied.status_code == 401
            assert denied.headers["www-authenticate"] == "Bearer"
            assert "scrape-secret" not in denied.text
        allowed = server.http.get(url, headers={"Authorization": "Bearer scrape-secret-123456"})
        assert allowed.status_code == 200 and "carebot_database_up" in allowed.text
        assert server.http.get(f"{server.url}/healthz").status_code == 200
        assert server.ingest(CASE).status_code == 202  # the ingest token still works
    finally:
        server.stop()
        runtime.engine.dispose()


def test_credentials_the_care_config_names_are_known_secrets(
        root_logging: None, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A source's API token and the CRM webhook's HMAC secret are named in the care
    config by environment variable; their values are redacted wherever they appear
    (a library quoting a request body), not only where a URL or token pattern matches."""
    import yaml

    from bot.config import DEFAULT_CONFIG_RESOURCE

    config = yaml.safe_load((Path(__file__).parents[2] / "bot" / "data"
                             / DEFAULT_CONFIG_RESOURCE).read_text("utf-8"))
    config["sources"] = [{"type": "mastodon", "base_url": "https://mastodon.example",
                          "credentials": {"token": "NIMBUS_MASTODON"}}]
    config.setdefault("workflow", {}).setdefault("escalation", {})["crm_secret_env"] = "CRM_HMAC"
    path = tmp_path / "care.yml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    monkeypatch.setenv("NIMBUS_MASTODON", "mstdn-Zq81LmVx")
    monkeypatch.setenv("CRM_HMAC", "hmac-Pk27wQ0e")
    settings = load_settings(carebot_config=path, _env_file=None)
    _setup_logging(settings)
    logging.getLogger("httpx").warning("sent body grant=mstdn-Zq81LmVx (signed hmac-Pk27wQ0e)")
    err = capsys.readouterr().err
    assert "sent body grant=" in err
    assert "mstdn-Zq81LmVx" not in err and "hmac-Pk27wQ0e" not in err
