"""Discourse forums: full-text search or every new post.

``search`` mode: ``GET /search.json?q=<term> order:latest&page=n`` answers
``{"posts": [...], "topics": [...], "grouped_search_result":
{"more_full_page_results": bool, ...}}``; a post carries a ``blurb`` (an
excerpt) and its topic's id, the topic its title and slug.
``latest`` mode: ``GET /posts.json`` answers ``{"latest_posts": [...]}`` and
``before=<post id>`` pages back. Post ids grow, so they are the walk's key.
Replies are ``POST /posts.json`` with ``topic_id`` and
``reply_to_post_number``, authenticated by ``Api-Key`` and ``Api-Username``.
"""

from __future__ import annotations

from typing import Any

from bot.domain import MentionIn
from bot.sources.base import (
    MentionRef,
    Page,
    decode_json,
    html_to_text,
    join_text,
    load_cursor,
    malformed,
    newest_first,
    parse_time,
)
from bot.sources.connector import Connector


class DiscourseSource(Connector):
    def auth_headers(self) -> dict[str, str]:
        if self.credentials.get("api_key"):
            return {"Api-Key": self.credentials["api_key"],
                    "Api-Username": self.credentials.get("api_username", "system")}
        return {}

    def queries(self) -> list[str]:
        if self.config.mode == "latest":
            return ["latest"]
        return [f"search:{term}" for term in self.terms]

    def fetch(self, query: str, cursor: str | None) -> Page:
        state = load_cursor(cursor)
        if query == "latest":
            return self._latest(state)
        page = int(state.get("walk") or 1)
        term = query.removeprefix("search:")
        body = self.http.get_json("/search.json", params={"q": f"{term} order:latest",
                                                          "page": page})
        if not isinstance(body, dict):
            raise malformed("/search.json", "expected an object")
        posts = body.get("posts") or []
        topics = {t.get("id"): t for t in body.get("topics") or [] if isinstance(t, dict)}
        if not isinstance(posts, list):
            raise malformed("/search.json", "posts is not a list")
        keyed = []
        for post in posts:
            if isinstance(post, dict) and isinstance(post.get("id"), int):
                topic = topics.get(post.get("topic_id")) or {}
                text = join_text(topic.get("title") if post.get("post_number") == 1 else None,
                                 html_to_text(post.get("blurb")))
                keyed.append((float(post["id"]), self._mention(post, topic.get("slug"), text)))
        grouped = body.get("grouped_search_result") or {}
        more = grouped.get("more_full_page_results") or grouped.get("more_posts")
        return newest_first(state, keyed, str(page + 1) if more else None)

    def _latest(self, state: dict[str, Any]) -> Page:
        params = {"before": state["walk"]} if state.get("walk") else {}
        body = self.http.get_json("/posts.json", params=params)
        posts = body.get("latest_posts") if isinstance(body, dict) else None
        if not isinstance(posts, list):
            raise malformed("/posts.json", "expected latest_posts")
        keyed = []
        for post in posts:
            if isinstance(post, dict) and isinstance(post.get("id"), int):
                text = join_text(post.get("topic_title") if post.get("post_number") == 1 else None,
                                 post.get("raw") or html_to_text(post.get("cooked")))
                keyed.append((float(post["id"]),
                              self._mention(post, post.get("topic_slug"), text)))
        oldest = min((int(k) for k, _ in keyed), default=None)
        return newest_first(state, keyed, str(oldest) if oldest and oldest > 1 else None)

    def _mention(self, post: dict[str, Any], slug: str | None, text: str) -> MentionIn:
        topic_id = post.get("topic_id")
        url = (f"{self.http.base_url}/t/{slug or 'topic'}/{topic_id}/{post.get('post_number', 1)}"
               if topic_id else None)
        return MentionIn(
            source=self.name, external_id=str(post["id"]), text=text or "(no text)",
            author=str(post.get("username") or post.get("name") or "unknown"), url=url,
            published_at=parse_time(post.get("created_at")),
        )

    def can_reply(self) -> bool:
        return bool(self.credentials.get("api_key") and self.credentials.get("api_username"))

    def reply(self, mention: MentionRef, text: str) -> str:
        post = self.http.get_json(f"/posts/{int(mention.external_id)}.json")
        if not isinstance(post, dict) or not post.get("topic_id"):
            raise malformed("/posts/{id}.json", "no topic_id")
        response = self.http.request("POST", "/posts.json", json={
            "topic_id": post["topic_id"], "raw": text,
            "reply_to_post_number": post.get("post_number")})
        created = decode_json(response, "/posts.json")
        if not isinstance(created, dict) or not created.get("id"):
            raise malformed("/posts.json", "no post in the answer")
        slug = created.get("topic_slug") or post.get("topic_slug") or "topic"
        return (f"{self.http.base_url}/t/{slug}/{created.get('topic_id', post['topic_id'])}/"
                f"{created.get('post_number')}")
