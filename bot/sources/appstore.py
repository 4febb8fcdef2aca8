"""App Store reviews from Apple's public customer-reviews RSS (JSON flavour).

``GET /{country}/rss/customerreviews/page={n}/id={app}/sortby=mostrecent/json``
answers ``{"feed": {"entry": [...], "link": [...]}}`` where every value is
wrapped as ``{"label": ...}``; ``entry`` is a single object when there is one
review, and older feeds put the app itself first (it has no ``im:rating``).
Apple serves at most ten pages; reviews are walked newest first down to the
newest review id seen before.
"""

from __future__ import annotations

from typing import Any

from bot.domain import MentionIn
from bot.sources.base import Page, join_text, load_cursor, malformed, newest_first, parse_time
from bot.sources.connector import Connector

MAX_PAGES = 10


def _label(node: Any) -> str:
    return str(node.get("label") or "") if isinstance(node, dict) else ""


class AppStoreSource(Connector):
    def queries(self) -> list[str]:
        return list(self.config.apps)

    def fetch(self, query: str, cursor: str | None) -> Page:
        country, app = query.split(":", 1)
        state = load_cursor(cursor)
        page = int(state.get("walk") or 1)
        path = f"/{country}/rss/customerreviews/page={page}/id={app}/sortby=mostrecent/json"
        body = self.http.get_json(path)
        feed = body.get("feed") if isinstance(body, dict) else None
        if not isinstance(feed, dict):
            raise malformed(path, "expected a feed")
        entries = feed.get("entry") or []
        if isinstance(entries, dict):
            entries = [entries]
        keyed = []
        for entry in entries:
            if not isinstance(entry, dict) or "im:rating" not in entry:
                continue
            review_id = _label(entry.get("id"))
            if review_id.isdigit():
                keyed.append((float(review_id), self._mention(entry, review_id, country)))
        next_token = str(page + 1) if keyed and page < MAX_PAGES else None
        return newest_first(state, keyed, next_token)

    def _mention(self, entry: dict[str, Any], review_id: str, country: str) -> MentionIn:
        author = entry.get("author") or {}
        rating = _label(entry.get("im:rating"))
        title = _label(entry.get("title"))
        return MentionIn(
            source=self.name, external_id=review_id,
            text=join_text(title, _label(entry.get("content"))) or f"{rating}-star review",
            author=_label(author.get("name")) or "anonymous",
            # Reviews have no page of their own: a shared app URL would make every
            # review look like a duplicate of the first, so none is given.
            url=None,
            lang=None,
            published_at=parse_time(_label(entry.get("updated"))),
        )
