"""RSS and Atom feeds (blogs, forums, news alerts, YouTube channel feeds).

Feeds are fetched with httpx (so timeouts, 429 and backoff behave like every
other source) and parsed with feedparser, which copes with RSS 0.9x-2.0, Atom
and most broken feeds. The cursor keeps ``ETag``/``Last-Modified`` for
conditional requests; a feed is one sliding window, so every poll reads it
whole and the poller drops entries it has already handled.
"""

from __future__ import annotations

import calendar
import hashlib
import io
from datetime import UTC, datetime
from typing import Any

import feedparser

from bot.domain import MentionIn
from bot.sources.base import (
    Page,
    dump_cursor,
    html_to_text,
    join_text,
    lang_code,
    load_cursor,
    malformed,
    short_key,
)
from bot.sources.connector import Connector


class RssSource(Connector):
    def queries(self) -> list[str]:
        return [short_key(url) for url in self.config.feeds]

    def _feed_url(self, query: str) -> str:
        for url in self.config.feeds:
            if short_key(url) == query:
                return url
        raise KeyError(query)

    def fetch(self, query: str, cursor: str | None) -> Page:
        url = self._feed_url(query)
        state = load_cursor(cursor)
        headers = {}
        if state.get("etag"):
            headers["If-None-Match"] = str(state["etag"])
        if state.get("modified"):
            headers["If-Modified-Since"] = str(state["modified"])
        response = self.http.request("GET", url, headers=headers)
        if response.status_code == 304:
            return Page([], cursor)
        parsed = feedparser.parse(io.BytesIO(response.content),
                                  response_headers={"content-type":
                                                    response.headers.get("content-type", "")})
        # feedparser reads anything: an HTML page (a login wall, a bot check, a
        # moved feed) gives no entries and no feed version rather than an error.
        if not parsed.entries and not parsed.get("version"):
            raise malformed(url.split("?")[0], "not an RSS or Atom feed")
        feed_lang = lang_code(parsed.feed.get("language"))
        feed_title = str(parsed.feed.get("title") or "")
        items = [m for m in (self._mention(e, feed_title, feed_lang) for e in parsed.entries)
                 if m is not None]
        new_state = {"etag": response.headers.get("ETag"),
                     "modified": response.headers.get("Last-Modified")}
        return Page(items, dump_cursor(new_state))

    def _mention(self, entry: Any, feed_title: str, feed_lang: str | None) -> MentionIn | None:
        link = entry.get("link") or None
        external_id = entry.get("id") or link
        summary = entry.get("summary") or ""
        if not summary and entry.get("content"):
            summary = entry["content"][0].get("value", "")
        text = join_text(entry.get("title"), html_to_text(summary))
        if not text:
            return None
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        if not external_id:
            # RSS makes <guid> and <link> optional: key the item by its content.
            seen = "\n".join([text, str(calendar.timegm(stamp)) if stamp else ""])
            external_id = "sha1:" + hashlib.sha1(seen.encode()).hexdigest()
        published = (datetime.fromtimestamp(calendar.timegm(stamp), UTC)
                     if stamp is not None else None)
        author = entry.get("author") or feed_title or "unknown"
        return MentionIn(source=self.name, external_id=str(external_id), text=text,
                         author=str(author)[:255], url=link, lang=feed_lang,
                         published_at=published)
