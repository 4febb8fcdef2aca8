"""Build connectors from the ``sources:`` configuration.

Credentials are read here, once, from the environment variables the config
names; a missing one is a ``ConfigError`` at start, naming the variable (never
a value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from bot.config import CareConfig
from bot.errors import ConfigError
from bot.sources.appstore import AppStoreSource
from bot.sources.bluesky import BlueskySource
from bot.sources.config import SourceConfig
from bot.sources.connector import Connector
from bot.sources.discourse import DiscourseSource
from bot.sources.hackernews import HackerNewsSource
from bot.sources.mastodon import MastodonSource
from bot.sources.reddit import RedditSource
from bot.sources.rss import RssSource
from bot.sources.stackexchange import StackExchangeSource

CONNECTORS: dict[str, type[Connector]] = {
    "rss": RssSource,
    "reddit": RedditSource,
    "mastodon": MastodonSource,
    "bluesky": BlueskySource,
    "hackernews": HackerNewsSource,
    "stackexchange": StackExchangeSource,
    "discourse": DiscourseSource,
    "appstore": AppStoreSource,
}


def search_terms(config: CareConfig, source: SourceConfig) -> list[str]:
    """The source's own queries, or the queries of its brands (all brands by default)."""
    if source.queries:
        terms = source.queries
    else:
        brands = [b for b in config.brands if not source.brands or b.name in source.brands]
        terms = [q for b in brands for q in (b.queries or [b.name])]
    out: list[str] = []
    for term in terms:
        term = term.strip()
        if term and term not in out:
            out.append(term)
    return out


def resolve_credentials(source: SourceConfig, environ: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, env in source.credentials.items():
        value = environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"sources.{source.name}: credentials.{key} names {env}, "
                              f"which is not set in the environment")
        values[key] = value
    return values


def build_source(config: CareConfig, source: SourceConfig, *,
                 environ: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> Connector:
    """One connector for ``source``.

    Raises:
        ConfigError: a credential's environment variable is missing, or a search
            source has nothing to search for.
    """
    credentials = resolve_credentials(source, os.environ if environ is None else environ)
    terms = search_terms(config, source)
    needs_terms = source.type in ("bluesky", "hackernews", "stackexchange") or (
        source.type == "reddit" and not source.subreddits) or (
        source.type == "mastodon" and not source.hashtags) or (
        source.type == "discourse" and source.mode == "search")
    if needs_terms and not terms:
        raise ConfigError(f"sources.{source.name}: nothing to search for — give it queries "
                          f"or configure brands with queries")
    return CONNECTORS[source.type](source, terms, credentials, transport=transport)


def build_sources(config: CareConfig, *, environ: Mapping[str, str] | None = None,
                  transport: httpx.BaseTransport | None = None) -> dict[str, Connector]:
    """Every enabled source, by name (raises ``ConfigError`` on the first bad one)."""
    return {s.name: build_source(config, s, environ=environ, transport=transport)
            for s in config.sources if s.enabled}


def find_source_config(config: CareConfig, name: str) -> SourceConfig | None:
    return next((s for s in config.sources if s.name == name), None)
