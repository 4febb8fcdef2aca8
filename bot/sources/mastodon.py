"""Mastodon: hashtag timelines and status search.

``GET /api/v1/timelines/tag/:hashtag`` and ``GET /api/v2/search?type=statuses``
return statuses newest first. carebot pages *forward* with ``min_id`` ("results
immediately newer than this id"): the cursor is the newest status id handled,
and the ``Link: <...min_id=...>; rel="prev"`` header (or the page's newest id)
moves it on, so nothing between polls is skipped. The first poll reads only
the newest page. Replies go through ``POST /api/v1/statuses`` with
``in_reply_to_id`` and need a token with ``write:statuses``.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bot.domain import MentionIn
from bot.sources.base import (
    MentionRef,
    Page,
    decode_json,
    dump_cursor,
    html_to_text,
    lang_code,
    load_cursor,
    malformed,
    parse_time,
)
from bot.sources.connector import Connector


def _id_key(status_id: str) -> tuple[int, str]:
    # Mastodon ids are numeric strings of growing length; compare as such.
    return (len(status_id), status_id)


def link_param(response: httpx.Response, rel: str, param: str) -> str | None:
    """A query parameter of the ``Link`` header entry with ``rel``."""
    link = response.links.get(rel)
    if not link or not link.get("url"):
        return None
    values = parse_qs(urlsplit(link["url"]).query).get(param)
    return values[0] if values else None


class MastodonSource(Connector):
    def auth_headers(self) -> dict[str, str]:
        token = self.credentials.get("token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def queries(self) -> list[str]:
        tags = list(self.config.hashtags)
        searches: list[str] = []
        for term in self.terms:
            if term.startswith("#"):
                if term[1:] not in tags:
                    tags.append(term[1:])
            elif self.credentials.get("token"):
                searches.append(term)  # status search needs a signed-in account
        if not tags and not searches:
            tags = [t.lstrip("@").replace(" ", "").lower() for t in self.terms[:1]]
        return [f"tag:{t}" for t in tags] + [f"search:{s}" for s in searches]

    def fetch(self, query: str, cursor: str | None) -> Page:
        state = load_cursor(cursor)
        params: dict[str, Any] = {"limit": min(self.config.page_size, 40)}
        if state.get("min_id"):
            params["min_id"] = state["min_id"]
        if query.startswith("tag:"):
            path = f"/api/v1/timelines/tag/{query.removeprefix('tag:')}"
        else:
            path = "/api/v2/search"
            params.update(q=query.removeprefix("search:"), type="statuses")
        response = self.http.request("GET", path, params=params)
        body = decode_json(response, path)
        statuses = body.get("statuses") if isinstance(body, dict) else body
        if not isinstance(statuses, list):
            raise malformed(path, "expected a list of statuses")
        items: list[MentionIn] = []
        newest = state.get("min_id")
        for status in statuses:
            if not isinstance(status, dict) or not status.get("id"):
                continue
            sid = str(status["id"])
            if newest is None or _id_key(sid) > _id_key(str(newest)):
                newest = sid
            if status.get("reblog"):
                continue  # a boost repeats a status that is found on its own
            items.append(self._mention(status))
        prev = link_param(response, "prev", "min_id")
        if prev and (newest is None or _id_key(prev) > _id_key(str(newest))):
            newest = prev
        more = bool(state.get("min_id")) and len(statuses) >= params["limit"]
        return Page(items, dump_cursor({"min_id": newest}), more=more)

    def _mention(self, status: dict[str, Any]) -> MentionIn:
        account = status.get("account") or {}
        text = html_to_text(status.get("content"))
        if status.get("spoiler_text"):
            text = f"{status['spoiler_text']}\n{text}"
        return MentionIn(
            source=self.name, external_id=str(status["id"]), text=text or "(no text)",
            author=str(account.get("acct") or account.get("username") or "unknown"),
            url=status.get("url") or status.get("uri"),
            author_reach=account.get("followers_count"),
            lang=lang_code(status.get("language")),
            published_at=parse_time(status.get("created_at")),
        )

    def can_reply(self) -> bool:
        return bool(self.credentials.get("token"))

    def reply(self, mention: MentionRef, text: str) -> str:
        if mention.author and f"@{mention.author}" not in text:
            text = f"@{mention.author} {text}"  # a reply that does not mention them is unseen
        key = hashlib.sha256(f"{mention.external_id}\n{text}".encode()).hexdigest()
        response = self.http.request(
            "POST", "/api/v1/statuses",
            json={"status": text, "in_reply_to_id": mention.external_id},
            headers={"Idempotency-Key": key})
        body = decode_json(response, "mastodon /api/v1/statuses")
        if not isinstance(body, dict) or not (body.get("url") or body.get("uri")):
            raise malformed("mastodon /api/v1/statuses", "no status in the answer")
        return str(body.get("url") or body.get("uri"))
