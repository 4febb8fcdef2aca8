"""Reply back: Mastodon, Bluesky, Reddit, Discourse against a local server."""

from __future__ import annotations

import pytest

from bot.config import CareConfig
from bot.errors import InvalidInput, NotAllowed, SourceUnavailable
from bot.sources.replies import reply_capable, send_reply
from tests.sources.conftest import with_sources
from tests.sources.server import SourceServer, fixture_json

ENV = {"MASTODON_TOKEN": "masto-secret", "REDDIT_TOKEN": "reddit-secret",
       "BSKY_HANDLE": "care.nimbus.example", "BSKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
       "DISCOURSE_KEY": "disc-secret", "DISCOURSE_USER": "nimbus_support"}


@pytest.fixture
def config(care_config: CareConfig, source_server: SourceServer) -> CareConfig:
    url = source_server.url
    return with_sources(care_config, [
        {"type": "mastodon", "base_url": url, "hashtags": ["nimbus"],
         "credentials": {"token": "MASTODON_TOKEN"}},
        {"type": "mastodon", "name": "mastodon-readonly", "base_url": url,
         "hashtags": ["nimbus"]},
        {"type": "reddit", "base_url": url, "queries": ["nimbus"],
         "credentials": {"token": "REDDIT_TOKEN"}},
        {"type": "bluesky", "base_url": url, "queries": ["nimbus"],
         "credentials": {"identifier": "BSKY_HANDLE", "app_password": "BSKY_APP_PASSWORD"}},
        {"type": "discourse", "base_url": url, "queries": ["nimbus"],
         "credentials": {"api_key": "DISCOURSE_KEY", "api_username": "DISCOURSE_USER"}},
        {"type": "hackernews", "base_url": url, "queries": ["nimbus"]},
    ])


def test_which_sources_can_reply(config: CareConfig) -> None:
    capable = {s.name: reply_capable(config, s.name, environ=ENV) for s in config.sources}
    assert capable == {"mastodon": True, "mastodon-readonly": False, "reddit": True,
                       "bluesky": True, "discourse": True, "hackernews": False}
    assert not reply_capable(config, "twitter", environ=ENV)  # webhook-only source
    assert not reply_capable(config, "mastodon", environ={})  # token not in the environment


def test_mastodon_reply_mentions_the_author(config: CareConfig,
                                            source_server: SourceServer) -> None:
    status = fixture_json("mastodon_tag.json")[0]
    status.update(id="113529780000000009", url="https://fosstodon.org/@care/113529780000000009")
    source_server.add("/api/v1/statuses", SourceServer.json(status), method="POST")
    url = send_reply(config, source="mastodon", external_id="113529771111111112",
                     author="lena", text="Sorry about that! We're on it.", environ=ENV)
    assert url == "https://fosstodon.org/@care/113529780000000009"
    [request] = source_server.requests_for("/api/v1/statuses", "POST")
    assert request.headers["authorization"] == "Bearer masto-secret"
    assert request.json() == {"status": "@lena Sorry about that! We're on it.",
                              "in_reply_to_id": "113529771111111112"}
    assert request.headers["idempotency-key"]


def test_reddit_reply_posts_a_comment(config: CareConfig, source_server: SourceServer) -> None:
    source_server.add("/api/comment", SourceServer.json({"json": {"errors": [], "data": {
        "things": [{"kind": "t1", "data": {
            "id": "lx1abcd", "name": "t1_lx1abcd", "parent_id": "t3_1gq3c9z",
            "permalink": "/r/techsupport/comments/1gq3c9z/nimbus_x1_stuck_on_boot_logo/lx1abcd/",
        }}]}}}), method="POST")
    url = send_reply(config, source="reddit", external_id="t3_1gq3c9z",
                     text="Hi! Please DM us your ticket number.", environ=ENV)
    assert url == ("https://www.reddit.com/r/techsupport/comments/1gq3c9z/"
                   "nimbus_x1_stuck_on_boot_logo/lx1abcd/")
    [request] = source_server.requests_for("/api/comment", "POST")
    assert request.form() == {"api_type": "json", "thing_id": "t3_1gq3c9z",
                              "text": "Hi! Please DM us your ticket number."}
    assert request.headers["authorization"] == "bearer reddit-secret"

    source_server.reset("/api/comment", SourceServer.json({"json": {"errors": [
        ["RATELIMIT", "you are doing that too much", "ratelimit"]]}}), method="POST")
    with pytest.raises(SourceUnavailable, match="RATELIMIT"):
        send_reply(config, source="reddit", external_id="t3_1gq3c9z", text="again",
                   environ=ENV)


def test_bluesky_reply_threads_under_root_and_parent(config: CareConfig,
                                                     source_server: SourceServer) -> None:
    jo = fixture_json("bluesky_search_p1.json")["posts"][1]  # itself a reply in a thread
    source_server.add("/xrpc/com.atproto.server.createSession", SourceServer.json({
        "did": "did:plc:carebotnimbus", "handle": "care.nimbus.example",
        "accessJwt": "jwt-access", "refreshJwt": "jwt-refresh"}), method="POST")
    source_server.add("/xrpc/app.bsky.feed.getPosts", SourceServer.json({"posts": [jo]}))
    source_server.add("/xrpc/com.atproto.repo.createRecord", SourceServer.json({
        "uri": "at://did:plc:carebotnimbus/app.bsky.feed.post/3lbr0reply",
        "cid": "bafyreply"}), method="POST")
    url = send_reply(config, source="bluesky", external_id=jo["uri"],
                     text="Désolés ! Écrivez-nous en DM.", environ=ENV)
    assert url == "https://bsky.app/profile/care.nimbus.example/post/3lbr0reply"
    [login] = source_server.requests_for("/xrpc/com.atproto.server.createSession", "POST")
    assert login.json() == {"identifier": "care.nimbus.example",
                            "password": "abcd-efgh-ijkl-mnop"}
    [create] = source_server.requests_for("/xrpc/com.atproto.repo.createRecord", "POST")
    assert create.headers["authorization"] == "Bearer jwt-access"
    body = create.json()
    assert body["repo"] == "did:plc:carebotnimbus"
    assert body["record"]["text"] == "Désolés ! Écrivez-nous en DM."
    assert body["record"]["reply"] == {
        "root": {"uri": "at://did:plc:root/app.bsky.feed.post/3lbq1root", "cid": "bafyroot"},
        "parent": {"uri": jo["uri"], "cid": jo["cid"]}}


def test_discourse_reply_answers_in_the_topic(config: CareConfig,
                                              source_server: SourceServer) -> None:
    source_server.add("/posts/51200.json", SourceServer.json({
        "id": 51200, "topic_id": 9870, "post_number": 4, "topic_slug": "sync-errors-on-windows",
        "username": "tom_r"}))
    source_server.add("/posts.json", SourceServer.json({
        "id": 51400, "topic_id": 9870, "post_number": 5,
        "topic_slug": "sync-errors-on-windows"}), method="POST")
    url = send_reply(config, source="discourse", external_id="51200",
                     text="Fixed in 4.2.1, please update.", environ=ENV)
    assert url == f"{source_server.url}/t/sync-errors-on-windows/9870/5"
    [request] = source_server.requests_for("/posts.json", "POST")
    assert request.json() == {"topic_id": 9870, "raw": "Fixed in 4.2.1, please update.",
                              "reply_to_post_number": 4}
    assert request.headers["api-key"] == "disc-secret"
    assert request.headers["api-username"] == "nimbus_support"


def test_refusals_are_clear_and_leak_no_secret(config: CareConfig,
                                               source_server: SourceServer) -> None:
    with pytest.raises(NotAllowed, match="cannot be sent"):
        send_reply(config, source="hackernews", external_id="1", text="hi", environ=ENV)
    with pytest.raises(NotAllowed, match="no reply credentials"):
        send_reply(config, source="mastodon-readonly", external_id="1", text="hi",
                   environ=ENV)
    with pytest.raises(InvalidInput):
        send_reply(config, source="mastodon", external_id="1", text="  ", environ=ENV)
    source_server.add("/api/v1/statuses", SourceServer.json({"error": "nope"}, 401),
                      method="POST")
    with pytest.raises(SourceUnavailable) as caught:
        send_reply(config, source="mastodon", external_id="1", text="hi", environ=ENV)
    assert "HTTP 401" in str(caught.value) and "masto-secret" not in str(caught.value)

