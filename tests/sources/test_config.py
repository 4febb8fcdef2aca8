"""The ``sources:`` config: clear errors at start, secrets only by env-var name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import load_care_config
from bot.errors import ConfigError
from bot.services import Services
from bot.sources.poller import Poller
from bot.sources.registry import build_sources, search_terms
from storage.db import Engine

SHIPPED = yaml.safe_load((Path(__file__).resolve().parents[2] / "bot" / "data"
                          / "default_config.yml").read_text())


def load_with(tmp_path: Path, sources: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    path = tmp_path / "care.yml"
    path.write_text(yaml.safe_dump({**SHIPPED, "sources": sources}))
    return load_care_config(path)


@pytest.mark.parametrize("source, message", [
    ({"type": "twitter"}, "sources.0.type: Input should be 'rss', 'reddit'"),
    ({"type": "rss"}, "an rss source needs feeds"),
    ({"type": "rss", "feeds": ["ftp://x"]}, "feed 'ftp://x' is not an http(s) URL"),
    # A feed URL may carry a token: the error names its start only.
    ({"type": "rss", "feeds": ["ftp://user:pw@example.com/f?token=abc"]},
     "feed 'ftp://user:p…' is not an http(s) URL"),
    ({"type": "mastodon", "hashtags": ["x"]}, "a mastodon source needs base_url"),
    ({"type": "reddit", "hashtags": ["x"]}, "hashtags applies only to mastodon sources"),
    ({"type": "appstore", "apps": ["284882215"]}, "expected country:app_id"),
    ({"type": "reddit", "poll_seconds": 0}, "sources.0.poll_seconds"),
    ({"type": "reddit", "credentials": {"password": "REDDIT_PASSWORD"}},
     "unknown credential 'password' for reddit (known: token)"),
    ({"type": "reddit", "brands": ["Acme"]}, "unknown brand 'Acme'"),
    ({"type": "bluesky", "credentials": {"identifier": "BSKY_HANDLE"}},
     "need both identifier and app_password"),
])
def test_bad_source_config_is_a_clear_error(tmp_path: Path, source: dict[str, object],
                                            message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_with(tmp_path, [source])
    assert message in str(caught.value)
    assert str(caught.value).startswith("CAREBOT_CONFIG (")


def test_a_secret_in_the_yaml_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_with(tmp_path, [{"type": "mastodon", "base_url": "https://m.example",
                              "credentials": {"token": "Zq9-real-token-value"}}])
    assert "credentials.token must name an environment variable" in str(caught.value)
    assert "Zq9-real-token-value" not in str(caught.value)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name 'reddit' is used twice"):
        load_with(tmp_path, [{"type": "reddit"}, {"type": "reddit", "subreddits": ["x"]}])


def test_missing_credential_env_var_fails_at_start(tmp_path: Path, engine: Engine) -> None:
    config = load_with(tmp_path, [{"type": "mastodon", "base_url": "https://m.example",
                                   "credentials": {"token": "MASTODON_TOKEN"}}])
    services = Services(engine=engine, config=config, classifier=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="credentials.token names MASTODON_TOKEN, which is "
                                          "not set"):
        Poller.from_services(services, environ={})
    poller = Poller.from_services(services, environ={"MASTODON_TOKEN": "t"})
    assert list(poller.sources) == ["mastodon"]
    poller.close()


def test_brand_queries_are_the_default_search_terms(tmp_path: Path) -> None:
    config = load_with(tmp_path, [
        {"type": "hackernews"},
        {"type": "stackexchange", "queries": ["nimbus-sdk"], "site": "superuser"},
        {"type": "discourse", "base_url": "https://forum.example", "mode": "latest",
         "enabled": False},
    ])
    hn, se, forum = config.sources
    assert search_terms(config, hn) == ["nimbus", "@nimbussupport", "#nimbus"]
    assert search_terms(config, se) == ["nimbus-sdk"]
    assert forum.mode == "latest"
    sources = build_sources(config, environ={})
    assert sorted(sources) == ["hackernews", "stackexchange"]  # disabled ones are not built
    for source in sources.values():
        source.close()
