"""Reddit: search and subreddit listings through the JSON API.

Listings (``/search.json``, ``/r/<sub>/new.json``) return newest first as
``{"kind": "Listing", "data": {"after": ..., "children": [{"kind": "t3",
"data": {...}}]}}``; ``after`` pages to older items. Without a token the
public ``www.reddit.com`` endpoints are used; with one, ``oauth.reddit.com``
and replies (``POST /api/comment``) work.
"""

from __future__ import annotations

from typing import Any

from bot.domain import MentionIn
from bot.errors import Gone, SourceUnavailable
from bot.sources.base import (
    MentionRef,
    Page,
    decode_json,
    join_text,
    load_cursor,
    malformed,
    newest_first,
    parse_time,
)
from bot.sources.connector import Connector

#: Reddit's refusals of a reply to a thread that is gone: deleted, archived or locked.
GONE_CODES = {"DELETED_LINK", "DELETED_COMMENT", "TOO_OLD", "THREAD_LOCKED"}

WEB = "https://www.reddit.com"


class RedditSource(Connector):
    def default_base_url(self) -> str:
        return "https://oauth.reddit.com" if self.credentials.get("token") else WEB

    def auth_headers(self) -> dict[str, str]:
        token = self.credentials.get("token")
        return {"Authorization": f"bearer {token}"} if token else {}

    def queries(self) -> list[str]:
        return ([f"r/{sub}" for sub in self.config.subreddits]
                + [f"search:{term}" for term in self.terms])

    def fetch(self, query: str, cursor: str | None) -> Page:
        state = load_cursor(cursor)
        params: dict[str, Any] = {"limit": self.config.page_size, "raw_json": 1}
        if state.get("walk"):
            params["after"] = state["walk"]
        if query.startswith("r/"):
            path = f"/{query}/new.json"
        else:
            path = "/search.json"
            params.update(q=query.removeprefix("search:"), sort="new", type="link")
        body = self.http.get_json(path, params=params)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("children"), list):
            raise malformed(path, "expected a Listing")
        keyed = []
        for child in data["children"]:
            post = child.get("data") if isinstance(child, dict) else None
            if isinstance(post, dict) and post.get("name"):
                mention = self._mention(post)
                keyed.append((float(post.get("created_utc") or 0), mention))
        return newest_first(state, keyed, data.get("after"))

    def _mention(self, post: dict[str, Any]) -> MentionIn:
        permalink = post.get("permalink") or ""
        return MentionIn(
            source=self.name, external_id=str(post["name"]),
            text=join_text(post.get("title"), post.get("selftext")) or str(post["name"]),
            author=str(post.get("author") or "[deleted]"),
            url=WEB + permalink if permalink else post.get("url"),
            published_at=parse_time(post.get("created_utc")),
        )

    def can_reply(self) -> bool:
        return bool(self.credentials.get("token"))

    def reply(self, mention: MentionRef, text: str) -> str:
        response = self.http.request("POST", "/api/comment", data={
            "api_type": "json", "thing_id": mention.external_id, "text": text})
        body = decode_json(response, "reddit /api/comment")
        result = body.get("json", {}) if isinstance(body, dict) else {}
        if result.get("errors"):
            codes = [str(e[0]) for e in result["errors"] if e]
            # A deleted, archived or locked thread takes no reply, however often asked.
            error = Gone if GONE_CODES.intersection(codes) else SourceUnavailable
            raise error(f"reddit refused the reply: {', '.join(codes)}")
        try:
            thing = result["data"]["things"][0]["data"]
        except (KeyError, IndexError, TypeError):
            raise malformed("reddit /api/comment", "no comment in the answer") from None
        return WEB + str(thing.get("permalink") or "")
