"""Stack Exchange: ``/2.3/search/advanced`` sorted by creation, newest first.

The wrapper is ``{"items": [...], "has_more": bool, "quota_remaining": n,
"backoff": seconds?}``; ``fromdate`` bounds the walk, ``page`` moves through
it. A ``backoff`` field means "no more requests to this method for that many
seconds" and is obeyed. Errors come as HTTP 400 with ``error_id``; 502
``throttle_violation`` is a rate limit. The ``filter=withbody`` built-in
filter adds question bodies.
"""

from __future__ import annotations

from typing import Any

from bot.domain import MentionIn
from bot.errors import SourceUnavailable
from bot.sources.base import (
    Page,
    RateLimited,
    html_to_text,
    join_text,
    load_cursor,
    malformed,
    newest_first,
    parse_time,
)
from bot.sources.connector import Connector

PATH = "/2.3/search/advanced"


class StackExchangeSource(Connector):
    def queries(self) -> list[str]:
        return [f"search:{term}" for term in self.terms]

    def fetch(self, query: str, cursor: str | None) -> Page:
        state = load_cursor(cursor)
        page = int(state.get("walk") or 1)
        params: dict[str, Any] = {"q": query.removeprefix("search:"), "site": self.config.site,
                                  "sort": "creation", "order": "desc", "page": page,
                                  "pagesize": self.config.page_size, "filter": "withbody"}
        if state.get("hw"):
            params["fromdate"] = int(state["hw"])
        if self.credentials.get("key"):
            params["key"] = self.credentials["key"]
        body = self.http.get_json(PATH, params=params, allow=(400,))
        if isinstance(body, dict) and body.get("error_id"):
            name = str(body.get("error_name") or body["error_id"])
            if body.get("error_id") == 502:
                raise RateLimited(f"stackexchange: {name}")
            raise SourceUnavailable(f"stackexchange: {name}")
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise malformed(PATH, "expected items")
        keyed = [(float(q.get("creation_date") or 0), self._mention(q))
                 for q in items if isinstance(q, dict) and q.get("question_id")]
        next_token = str(page + 1) if body.get("has_more") else None
        result = newest_first(state, keyed, next_token)
        if body.get("backoff"):
            result.wait_seconds = float(body["backoff"])
        return result

    def _mention(self, question: dict[str, Any]) -> MentionIn:
        owner = question.get("owner") or {}
        return MentionIn(
            source=self.name, external_id=str(question["question_id"]),
            text=join_text(html_to_text(question.get("title")),
                           html_to_text(question.get("body"))) or str(question["question_id"]),
            author=html_to_text(owner.get("display_name")) or "unknown",
            url=question.get("link"),
            published_at=parse_time(question.get("creation_date")),
        )
