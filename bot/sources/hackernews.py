"""Hacker News through the Algolia search API.

``GET /api/v1/search_by_date?query=..&tags=(story,comment)`` answers
``{"hits": [...], "page": n, "nbPages": N, "hitsPerPage": k}`` newest first;
``numericFilters=created_at_i>=<high-water mark>`` bounds the walk and
``page`` moves through it.
"""

from __future__ import annotations

from typing import Any

from bot.domain import MentionIn
from bot.sources.base import (
    Page,
    html_to_text,
    join_text,
    load_cursor,
    malformed,
    newest_first,
    parse_time,
)
from bot.sources.connector import Connector

ITEM = "https://news.ycombinator.com/item?id="


class HackerNewsSource(Connector):
    def queries(self) -> list[str]:
        return [f"search:{term}" for term in self.terms]

    def fetch(self, query: str, cursor: str | None) -> Page:
        state = load_cursor(cursor)
        page = int(state.get("walk") or 0)
        params: dict[str, Any] = {"query": query.removeprefix("search:"),
                                  "tags": "(story,comment)", "hitsPerPage": self.config.page_size,
                                  "page": page}
        if state.get("hw"):
            params["numericFilters"] = f"created_at_i>={int(state['hw'])}"
        path = "/api/v1/search_by_date"
        body = self.http.get_json(path, params=params)
        hits = body.get("hits") if isinstance(body, dict) else None
        if not isinstance(hits, list):
            raise malformed(path, "expected hits")
        keyed = [(float(h.get("created_at_i") or 0), self._mention(h))
                 for h in hits if isinstance(h, dict) and h.get("objectID")]
        pages = int(body.get("nbPages") or 0)
        next_token = str(page + 1) if page + 1 < pages else None
        return newest_first(state, keyed, next_token)

    def _mention(self, hit: dict[str, Any]) -> MentionIn:
        if hit.get("comment_text"):
            text = html_to_text(hit["comment_text"])
        else:
            text = join_text(hit.get("title"), html_to_text(hit.get("story_text")))
        return MentionIn(
            source=self.name, external_id=str(hit["objectID"]),
            text=text or str(hit.get("url") or hit["objectID"]),
            author=str(hit.get("author") or "unknown"),
            url=ITEM + str(hit["objectID"]),
            published_at=parse_time(hit.get("created_at_i")) or parse_time(hit.get("created_at")),
        )
