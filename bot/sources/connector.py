"""The base class of the built-in connectors: config, credentials, one HTTP client."""

from __future__ import annotations

import httpx

from bot.sources.base import HttpConnector, MentionRef, Page
from bot.sources.config import SourceConfig

DEFAULT_BASE_URLS: dict[str, str] = {
    "rss": "",
    "reddit": "https://www.reddit.com",
    "bluesky": "https://public.api.bsky.app",
    "hackernews": "https://hn.algolia.com",
    "stackexchange": "https://api.stackexchange.com",
    "appstore": "https://itunes.apple.com",
}


class Connector:
    """One configured source.

    Args:
        config: the source's configuration.
        terms: the search terms it polls (its own ``queries`` or its brands').
        credentials: resolved credential values by key (never logged).
        transport: an httpx transport (tests may pass one; default: network).
    """

    def __init__(self, config: SourceConfig, terms: list[str],
                 credentials: dict[str, str] | None = None, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.name = config.name
        self.terms = terms
        self.credentials = credentials or {}
        base = config.base_url or self.default_base_url()
        self.http = HttpConnector(config.name, base, timeout=config.timeout_seconds,
                                  headers=self.auth_headers(), transport=transport)

    def default_base_url(self) -> str:
        return DEFAULT_BASE_URLS.get(self.config.type, "")

    def auth_headers(self) -> dict[str, str]:
        return {}

    def queries(self) -> list[str]:  # pragma: no cover - every connector overrides
        raise NotImplementedError

    def fetch(self, query: str, cursor: str | None) -> Page:  # pragma: no cover
        raise NotImplementedError

    def can_reply(self) -> bool:
        return False

    def reply(self, mention: MentionRef, text: str) -> str:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        self.http.close()
