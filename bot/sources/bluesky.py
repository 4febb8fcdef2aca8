"""Bluesky: ``app.bsky.feed.searchPosts`` with ``sort=latest`` and its cursor.

The answer is ``{"cursor": ..., "hitsTotal": ..., "posts": [PostView]}``,
newest first; ``since`` bounds the walk to posts indexed after the last
high-water mark. Search works on the public AppView; with an account
(``identifier`` + an app password) requests go through the account's PDS,
and replies are written with ``com.atproto.repo.createRecord``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.domain import MentionIn
from bot.errors import Gone, NotAllowed
from bot.sources.base import (
    MentionRef,
    Page,
    decode_json,
    epoch,
    lang_code,
    load_cursor,
    malformed,
    newest_first,
    parse_time,
)
from bot.sources.connector import Connector

XRPC = "/xrpc/"


def post_url(uri: str, handle: str | None) -> str | None:
    """``at://did/app.bsky.feed.post/rkey`` -> the bsky.app web URL."""
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3 or parts[1] != "app.bsky.feed.post":
        return None
    return f"https://bsky.app/profile/{handle or parts[0]}/post/{parts[2]}"


class BlueskySource(Connector):
    _session: dict[str, Any] | None = None

    def default_base_url(self) -> str:
        if self.credentials.get("identifier"):
            return "https://bsky.social"
        return "https://public.api.bsky.app"

    def queries(self) -> list[str]:
        return [f"search:{term}" for term in self.terms]

    def _auth(self) -> dict[str, str]:
        if not self.credentials.get("identifier"):
            return {}
        if self._session is None:
            response = self.http.request(
                "POST", XRPC + "com.atproto.server.createSession",
                json={"identifier": self.credentials["identifier"],
                      "password": self.credentials.get("app_password", "")})
            session = decode_json(response, "bluesky createSession")
            if not isinstance(session, dict) or not session.get("accessJwt"):
                raise malformed("bluesky createSession", "no accessJwt")
            self._session = session
        return {"Authorization": f"Bearer {self._session['accessJwt']}"}

    def fetch(self, query: str, cursor: str | None) -> Page:
        state = load_cursor(cursor)
        params: dict[str, Any] = {"q": query.removeprefix("search:"), "sort": "latest",
                                  "limit": self.config.page_size}
        if state.get("hw"):
            params["since"] = datetime.fromtimestamp(state["hw"], UTC).isoformat()
        if state.get("walk"):
            params["cursor"] = state["walk"]
        path = XRPC + "app.bsky.feed.searchPosts"
        body = self.http.get_json(path, params=params, headers=self._auth())
        posts = body.get("posts") if isinstance(body, dict) else None
        if not isinstance(posts, list):
            raise malformed(path, "expected posts")
        keyed = []
        for post in posts:
            if isinstance(post, dict) and post.get("uri"):
                mention = self._mention(post)
                keyed.append((epoch(parse_time(post.get("indexedAt"))
                                    or mention.published_at), mention))
        return newest_first(state, keyed, body.get("cursor"))

    def _mention(self, post: dict[str, Any]) -> MentionIn:
        author = post.get("author") or {}
        record = post.get("record") or {}
        langs = record.get("langs") or []
        handle = author.get("handle")
        return MentionIn(
            source=self.name, external_id=str(post["uri"]),
            text=str(record.get("text") or "").strip() or "(no text)",
            author=str(handle or author.get("did") or "unknown"),
            url=post_url(str(post["uri"]), handle),
            author_reach=author.get("followersCount"),
            lang=lang_code(langs[0]) if langs else None,
            published_at=parse_time(record.get("createdAt")) or parse_time(post.get("indexedAt")),
        )

    def can_reply(self) -> bool:
        return bool(self.credentials.get("identifier") and self.credentials.get("app_password"))

    def reply(self, mention: MentionRef, text: str) -> str:
        if not self.can_reply():
            raise NotAllowed(f"{self.name}: no Bluesky account configured for replies")
        auth = self._auth()
        body = self.http.get_json(XRPC + "app.bsky.feed.getPosts",
                                  params={"uris": mention.external_id}, headers=auth)
        posts = body.get("posts") if isinstance(body, dict) else None
        if not posts:
            raise Gone(f"{self.name}: the post to answer is gone")
        parent = {"uri": posts[0]["uri"], "cid": posts[0]["cid"]}
        root = ((posts[0].get("record") or {}).get("reply") or {}).get("root") or parent
        did = self._session["did"] if self._session else ""
        record = {"$type": "app.bsky.feed.post", "text": text,
                  "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                  "reply": {"root": root, "parent": parent}}
        response = self.http.request("POST", XRPC + "com.atproto.repo.createRecord",
                                     json={"repo": did, "collection": "app.bsky.feed.post",
                                           "record": record}, headers=auth)
        created = decode_json(response, "bluesky createRecord")
        url = post_url(str(created.get("uri", "")), self._session.get("handle")
                       if self._session else None) if isinstance(created, dict) else None
        if url is None:
            raise malformed("bluesky createRecord", "no uri in the answer")
        return url
