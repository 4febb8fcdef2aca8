"""The ``sources:`` section of the care configuration.

Each entry is one listening source: a connector type, what it listens to
(feeds, subreddits, hashtags, search queries — or the brands' queries), how
often it polls, and optional credentials given as the *names* of environment
variables, so secrets never sit in the YAML file.

    sources:
      - type: reddit
        subreddits: [nimbus]            # plus a search for every brand query
        poll_seconds: 300
      - type: mastodon
        base_url: https://mastodon.social
        hashtags: [nimbus]
        credentials: {token: MASTODON_TOKEN}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SourceType = Literal[
    "rss", "reddit", "mastodon", "bluesky", "hackernews", "stackexchange", "discourse", "appstore"
]

#: Credential keys each connector understands (values name environment variables).
CREDENTIAL_KEYS: dict[str, tuple[str, ...]] = {
    "rss": (),
    "reddit": ("token",),
    "mastodon": ("token",),
    "bluesky": ("identifier", "app_password"),
    "hackernews": (),
    "stackexchange": ("key",),
    "discourse": ("api_key", "api_username"),
    "appstore": (),
}

#: Which list/option fields apply to which connector types.
_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "feeds": ("rss",),
    "subreddits": ("reddit",),
    "hashtags": ("mastodon",),
    "site": ("stackexchange",),
    "apps": ("appstore",),
    "mode": ("discourse",),
}

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_APP = re.compile(r"^[a-z]{2}:\d+$")


class NoiseConfig(BaseModel):
    """Spam heuristics applied to every source before classification."""

    model_config = ConfigDict(extra="forbid")

    #: A text with more links than this is a link farm.
    max_links: int = Field(default=3, ge=0)
    #: The same text from different authors within this window is spam.
    duplicate_hours: int = Field(default=24, ge=0)
    #: Texts shorter than this (normalised) are never called duplicate spam.
    duplicate_min_chars: int = Field(default=30, ge=1)


class SourceConfig(BaseModel):
    """One listening source."""

    model_config = ConfigDict(extra="forbid")

    type: SourceType
    #: Unique name; stored as the mention's ``source``. Defaults to ``type``.
    name: str = Field(default="", max_length=64)
    enabled: bool = True
    poll_seconds: int = Field(default=300, ge=1)
    base_url: str | None = None
    #: Search terms; empty means the queries of ``brands`` (all brands when empty).
    queries: list[str] = Field(default_factory=list)
    brands: list[str] = Field(default_factory=list)
    feeds: list[str] = Field(default_factory=list)
    subreddits: list[str] = Field(default_factory=list)
    hashtags: list[str] = Field(default_factory=list)
    site: str | None = None
    #: App Store apps as ``country:app_id``, e.g. ``us:284882215``.
    apps: list[str] = Field(default_factory=list)
    #: Discourse: ``search`` (brand queries) or ``latest`` (every new post).
    mode: Literal["search", "latest"] | None = None
    #: Language allow-list; empty means the languages of the brands in scope.
    languages: list[str] = Field(default_factory=list)
    credentials: dict[str, str] = Field(default_factory=dict)
    max_pages: int = Field(default=5, ge=1, le=100)
    page_size: int = Field(default=50, ge=1, le=100)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("feeds")
    @classmethod
    def _feed_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                # Name the feed by its start only: a feed URL may carry a token.
                shown = url if len(url) <= 12 else url[:12] + "…"
                raise ValueError(f"feed {shown!r} is not an http(s) URL")
        return value

    @field_validator("apps")
    @classmethod
    def _apps(cls, value: list[str]) -> list[str]:
        for app in value:
            if not _APP.match(app):
                raise ValueError(f"app {app!r}: expected country:app_id, e.g. us:284882215")
        return value

    @field_validator("hashtags", "subreddits")
    @classmethod
    def _bare_names(cls, value: list[str]) -> list[str]:
        return [v.strip().lstrip("#").removeprefix("r/") for v in value if v.strip()]

    @model_validator(mode="after")
    def _fits_type(self) -> SourceConfig:
        if not self.name:
            self.name = self.type
        for fld, types in _ONLY_FOR.items():
            if getattr(self, fld) not in (None, []) and self.type not in types:
                raise ValueError(f"{fld} applies only to {'/'.join(types)} sources")
        allowed = CREDENTIAL_KEYS[self.type]
        for key, env in self.credentials.items():
            if key not in allowed:
                known = ", ".join(allowed) or "none"
                raise ValueError(f"unknown credential {key!r} for {self.type} (known: {known})")
            if not _ENV_NAME.match(env):
                # Never echo the value: it may be the secret itself.
                raise ValueError(f"credentials.{key} must name an environment variable "
                                 f"(e.g. {self.type.upper()}_{key.upper()}), not hold a value")
        if self.type == "rss" and not self.feeds:
            raise ValueError("an rss source needs feeds")
        if self.type == "appstore" and not self.apps:
            raise ValueError("an appstore source needs apps (country:app_id)")
        if self.type in ("mastodon", "discourse") and self.base_url is None:
            raise ValueError(f"a {self.type} source needs base_url (the instance or forum)")
        if self.type == "stackexchange" and not self.site:
            self.site = "stackoverflow"
        if self.type == "discourse" and self.mode is None:
            self.mode = "search"
        if self.type == "bluesky" and len(self.credentials) == 1:
            raise ValueError("bluesky credentials need both identifier and app_password")
        if self.type == "discourse" and len(self.credentials) == 1:
            raise ValueError("discourse credentials need both api_key and api_username")
        return self


def check_sources(sources: list[SourceConfig], brand_names: list[str]) -> None:
    """Cross-checks that need the whole config: unique names, known brands.

    Raises:
        ValueError: naming the offending source.
    """
    seen: set[str] = set()
    for i, source in enumerate(sources):
        if source.name in seen:
            raise ValueError(f"sources.{i}: name {source.name!r} is used twice "
                             f"(give each {source.type} source its own name)")
        seen.add(source.name)
        for brand in source.brands:
            if brand not in brand_names:
                raise ValueError(f"sources.{i} ({source.name}): unknown brand {brand!r}")
