"""Poll listening sources: durable cursors, backoff, noise filtering, dedup, ingest.

One ``poll(name)`` walks every query of one source, page by page. For each
page it drops items already handled, filters noise, drops mentions another
source already brought in (same URL, or same text from the same author),
records the verdicts, ingests the rest through ``Services.ingest`` and only
then stores the page's cursor — so a process that dies mid-walk resumes from
the last stored page, with nothing skipped and nothing posted twice.

A failing source (timeout, 5xx, 429, a malformed body) records the error and
backs off — ``Retry-After`` when the server gave one, else exponentially — and
never affects another source: each source is its own scheduler job.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx

from bot.domain import MentionIn
from bot.errors import SourceUnavailable
from bot.services import Services
from bot.sources.base import Page, RateLimited, Source, storable
from bot.sources.dedup import fingerprints, normalize_text
from bot.sources.noise import LangDetector, NoiseRules
from bot.sources.registry import build_sources, find_source_config
from storage import sources as repo
from storage.db import session_scope

log = logging.getLogger(__name__)

BASE_BACKOFF = 60.0
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class PollResult:
    """What one poll of one source did."""

    source: str
    status: str  # "ok", "backoff" (skipped: backing off) or "failed"
    fetched: int = 0
    ingested: int = 0
    error: str | None = None


def backoff_seconds(failures: int, *, base: float = BASE_BACKOFF,
                    cap: float = MAX_BACKOFF) -> float:
    """Exponential backoff: base, 2*base, 4*base... capped."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


class Poller:
    """Polls configured sources into ``services``.

    Args:
        services: the use cases (``ingest``, the clock, the engine, the config).
        sources: connectors by name.
        detect: optional language detector for items whose source gives none.
    """

    def __init__(self, services: Services, sources: Mapping[str, Source], *,
                 detect: LangDetector | None = None, base_backoff: float = BASE_BACKOFF,
                 max_backoff: float = MAX_BACKOFF) -> None:
        self.services = services
        self.sources = dict(sources)
        self.detect = detect
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.rules: dict[str, NoiseRules] = {}
        for name in self.sources:
            source_config = find_source_config(services.config, name)
            if source_config is not None:
                self.rules[name] = NoiseRules.for_source(services.config, source_config)

    @classmethod
    def from_services(cls, services: Services, *, environ: Mapping[str, str] | None = None,
                      transport: httpx.BaseTransport | None = None) -> Poller:
        """A poller over every enabled source of ``services.config`` (``ConfigError`` if bad)."""
        return cls(services, build_sources(services.config, environ=environ,
                                           transport=transport))

    def intervals(self) -> dict[str, int]:
        """Poll interval in seconds per source."""
        out = {}
        for name in self.sources:
            source_config = find_source_config(self.services.config, name)
            out[name] = source_config.poll_seconds if source_config else 300
        return out

    def poll_all(self) -> list[PollResult]:
        return [self.poll(name) for name in self.sources]

    def poll(self, name: str) -> PollResult:
        """Poll every query of source ``name`` once (several pages when behind)."""
        source = self.sources[name]
        engine = self.services.engine
        now = self.services.clock()
        with session_scope(engine) as session:
            until = repo.backoff_until(session=session, source=name)
        if until is not None and until > now:
            return PollResult(name, "backoff")
        source_config = find_source_config(self.services.config, name)
        max_pages = source_config.max_pages if source_config else 5
        fetched = ingested = 0
        wait: float | None = None
        query = ""
        try:
            for query in source.queries():
                for _ in range(max_pages):
                    with session_scope(engine) as session:
                        cursor = repo.get_cursor(session=session, source=name, query_key=query)
                    page = source.fetch(query, cursor)
                    counts = self._take(name, query, page)
                    fetched += counts["fetched"]
                    ingested += counts["ingested"]
                    if page.wait_seconds:
                        wait = max(wait or 0.0, page.wait_seconds)
                    if not page.more or wait:
                        break
                if wait:
                    break  # the server asked for a pause: the other queries wait too
        except SourceUnavailable as exc:
            return self._failed(name, query, str(exc),
                                exc.retry_after if isinstance(exc, RateLimited) else None)
        except Exception as exc:  # noqa: BLE001 - a connector bug must not stop the poller
            log.exception("source %s: unexpected error", name)
            return self._failed(name, query, f"internal error: {type(exc).__name__}", None)
        later = self.services.clock()
        with session_scope(engine) as session:
            repo.record_success(session=session, source=name, now=later,
                                backoff_until=later + timedelta(seconds=wait) if wait else None)
        return PollResult(name, "ok", fetched=fetched, ingested=ingested)

    def _failed(self, name: str, query: str, error: str, retry_after: float | None) -> PollResult:
        now = self.services.clock()
        with session_scope(self.services.engine) as session:
            failures = repo.record_failure(session=session, source=name, query_key=query or "*",
                                           error=error, now=now)
            delay = (max(1.0, retry_after) if retry_after is not None
                     else backoff_seconds(failures, base=self.base_backoff, cap=self.max_backoff))
            repo.set_backoff(session=session, source=name, until=now + timedelta(seconds=delay))
        log.warning("source %s failed (%d in a row): %s; next try in %.0fs",
                    name, failures, error, delay)
        self.services.metrics.source_error(name)
        return PollResult(name, "failed", error=error)

    def _take(self, name: str, query: str, page: Page) -> Counter[str]:
        """Filter, dedup and ingest one page, then store its cursor."""
        counts: Counter[str] = Counter(fetched=len(page.items), ingested=0)
        unique: dict[str, MentionIn] = {}
        for item in map(storable, page.items):
            unique.setdefault(item.external_id, item)
        now = self.services.clock()
        rules = self.rules.get(name)
        keep: list[MentionIn] = []
        with session_scope(self.services.engine) as session:
            done = repo.handled(session=session, source=name, external_ids=list(unique))
            counts["seen"] = len(page.items) - len(unique) + len(done)
            rows: list[repo.Seen] = []
            batch_urls: set[str] = set()
            batch_texts: dict[str, set[str]] = {}
            since = now - timedelta(hours=self.services.config.noise.duplicate_hours)
            min_chars = self.services.config.noise.duplicate_min_chars
            for item in unique.values():
                if item.external_id in done:
                    continue
                url_key, text_key, author_key = fingerprints(item)
                seen = repo.Seen(name, item.external_id, url_key, text_key, author_key, "")
                reason = rules.reason(item, self.detect) if rules else None
                if reason is None and (
                        (url_key is not None and url_key in batch_urls)
                        or author_key in batch_texts.get(text_key, set())
                        or repo.find_duplicate(session=session, item=seen) is not None):
                    verdict = "duplicate"
                elif reason is None and len(normalize_text(item.text)) >= min_chars and (
                        batch_texts.get(text_key, set()) - {author_key}
                        or repo.same_text_elsewhere(session=session, item=seen, since=since)):
                    verdict = "noise:duplicate_text"
                elif reason is not None:
                    verdict = f"noise:{reason}"
                else:
                    verdict = repo.INGESTED
                    keep.append(item)
                if verdict != repo.INGESTED:
                    counts[verdict] += 1
                if url_key is not None:
                    batch_urls.add(url_key)
                batch_texts.setdefault(text_key, set()).add(author_key)
                rows.append(repo.Seen(name, item.external_id, url_key, text_key, author_key,
                                      verdict))
            repo.record_seen(session=session, items=rows, now=now)
        if keep:
            result = self.services.ingest(keep)
            counts["ingested"] = len(result.new_ids)
        with session_scope(self.services.engine) as session:
            repo.save_page(session=session, source=name, query_key=query, cursor=page.cursor,
                           counts=dict(counts), now=now)
        return counts

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
