"""Each connector against a local server playing its API with recorded payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import CareConfig
from bot.errors import SourceUnavailable
from bot.sources.base import RateLimited, load_cursor
from bot.sources.connector import Connector
from bot.sources.registry import build_source
from tests.sources.conftest import with_sources
from tests.sources.server import Answer, SourceServer, fixture_json


@pytest.fixture
def connect(care_config: CareConfig, source_server: SourceServer) -> Iterator[Any]:
    made: list[Connector] = []

    def make(**source: Any) -> Connector:
        source.setdefault("base_url", source_server.url)
        config = with_sources(care_config, [source])
        connector = build_source(config, config.sources[0], environ={"TOKEN": "s3cret"})
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def ids(page: Any) -> list[str]:
    return [m.external_id for m in page.items]


# -- Reddit ----------------------------------------------------------------------

def test_reddit_search_walks_pages_with_after_and_stops_at_the_last_seen(
        connect: Any, source_server: SourceServer) -> None:
    reddit = connect(type="reddit", queries=["nimbus"], page_size=2)
    source_server.add("/search.json", SourceServer.file("reddit_search_p1.json"))
    assert reddit.queries() == ["search:nimbus"]

    first = reddit.fetch("search:nimbus", None)
    post = first.items[0]
    assert post.external_id == "t3_1gq3c9z" and post.author == "dana_k"
    assert post.text.startswith("Nimbus X1 stuck on boot logo\nSince the 4.2 update")
    assert post.url == ("https://www.reddit.com/r/techsupport/comments/1gq3c9z/"
                        "nimbus_x1_stuck_on_boot_logo/")
    assert post.published_at == datetime(2025, 11, 23, 12, 20, tzinfo=UTC)
    # A first walk reads the newest page only, and remembers its newest item.
    assert not first.more
    assert load_cursor(first.cursor) == {"hw": 1763900400.0}
    [request] = source_server.requests_for("/search.json")
    assert request.query["q"] == "nimbus" and request.query["sort"] == "new"
    assert "after" not in request.query

    # Later: two pages newer than the mark, then the mark itself ends the walk.
    newer = fixture_json("reddit_search_p1.json")
    for child, created in zip(newer["data"]["children"], (1763990000.0, 1763980000.0),
                              strict=True):
        child["data"]["created_utc"] = created
        child["data"]["name"] += "n"
    older = fixture_json("reddit_search_p2.json")
    older["data"]["children"][0]["data"]["created_utc"] = 1763900400.0  # the old mark
    older["data"]["children"].append({"kind": "t3", "data": {
        "name": "t3_old", "title": "old", "created_utc": 1763000000.0, "author": "x",
        "permalink": "/r/x/comments/old/"}})
    older["data"]["after"] = "t3_old"
    source_server.reset("/search.json", SourceServer.json(newer), SourceServer.json(older))
    page1 = reddit.fetch("search:nimbus", first.cursor)
    assert page1.more and ids(page1) == ["t3_1gq3c9zn", "t3_1gq2b7xn"]
    page2 = reddit.fetch("search:nimbus", page1.cursor)
    assert source_server.requests_for("/search.json")[-1].query["after"] == "t3_1gq2b7x"
    # The item at the mark is handed over (ties); older ones are not; the walk ends.
    assert ids(page2) == ["t3_1gp9a1a"] and not page2.more
    assert load_cursor(page2.cursor) == {"hw": 1763990000.0}


def test_reddit_subreddit_listing_and_empty_page(connect: Any,
                                                 source_server: SourceServer) -> None:
    reddit = connect(type="reddit", subreddits=["r/nimbus"], queries=["nimbus"])
    assert reddit.queries() == ["r/nimbus", "search:nimbus"]
    source_server.add("/r/nimbus/new.json", SourceServer.file("reddit_empty.json"))
    page = reddit.fetch("r/nimbus", None)
    assert page.items == [] and not page.more
    assert load_cursor(page.cursor) == {}


def test_reddit_token_goes_in_the_header(connect: Any, source_server: SourceServer) -> None:
    reddit = connect(type="reddit", queries=["nimbus"], credentials={"token": "TOKEN"})
    source_server.add("/search.json", SourceServer.file("reddit_empty.json"))
    reddit.fetch("search:nimbus", None)
    assert source_server.requests[0].headers["authorization"] == "bearer s3cret"


# -- Mastodon --------------------------------------------------------------------

def test_mastodon_hashtag_pages_forward_with_min_id_and_the_link_header(
        connect: Any, source_server: SourceServer) -> None:
    masto = connect(type="mastodon", hashtags=["#nimbus"], page_size=2)
    assert masto.queries() == ["tag:nimbus"]
    path = "/api/v1/timelines/tag/nimbus"
    link = (f'<{source_server.url}{path}?max_id=113529770000000001>; rel="next", '
            f'<{source_server.url}{path}?min_id=113529771111111112>; rel="prev"')
    source_server.add(path, SourceServer.file("mastodon_tag.json", headers={"Link": link}))
    first = masto.fetch("tag:nimbus", None)
    lena, kim = first.items
    assert lena.text == ("Mein #nimbus funktioniert nicht seit dem Update & der Support "
                         "antwortet nicht.")
    assert (lena.author, lena.author_reach, lena.lang) == ("lena", 1520, "de")
    assert lena.url == "https://fosstodon.org/@lena/113529771111111112"
    assert kim.text == "Loving the new #nimbus dark mode.\nGreat job!"
    assert kim.author == "kim@mastodon.social"
    assert not first.more and load_cursor(first.cursor) == {"min_id": "113529771111111112"}

    # Next poll asks only for newer statuses; a full page means "more".
    source_server.reset(path, SourceServer.file("mastodon_tag.json"),
                        SourceServer.json([]))
    second = masto.fetch("tag:nimbus", first.cursor)
    assert source_server.requests_for(path)[-1].query["min_id"] == "113529771111111112"
    assert second.more
    third = masto.fetch("tag:nimbus", second.cursor)
    assert third.items == [] and not third.more
    assert load_cursor(third.cursor) == {"min_id": "113529771111111112"}


def test_mastodon_skips_boosts_and_rejects_a_malformed_body(
        connect: Any, source_server: SourceServer) -> None:
    masto = connect(type="mastodon", hashtags=["nimbus"])
    statuses = fixture_json("mastodon_tag.json")
    statuses[1]["reblog"] = dict(statuses[0])
    path = "/api/v1/timelines/tag/nimbus"
    source_server.add(path, SourceServer.json(statuses), SourceServer.json({"error": "x"}),
                      Answer(200, b"<html>maintenance</html>", {"Content-Type": "text/html"}))
    assert ids(masto.fetch("tag:nimbus", None)) == ["113529771111111112"]
    with pytest.raises(SourceUnavailable, match="malformed body"):
        masto.fetch("tag:nimbus", None)
    with pytest.raises(SourceUnavailable, match="not JSON"):
        masto.fetch("tag:nimbus", None)


# -- Bluesky ---------------------------------------------------------------------

def test_bluesky_search_walks_the_cursor_bounded_by_since(
        connect: Any, source_server: SourceServer) -> None:
    sky = connect(type="bluesky", queries=["nimbus"])
    path = "/xrpc/app.bsky.feed.searchPosts"
    source_server.add(path, SourceServer.file("bluesky_search_p1.json"))
    first = sky.fetch("search:nimbus", None)
    sam, jo = first.items
    assert sam.external_id == "at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3lbq2xkz7ck2a"
    assert sam.url == "https://bsky.app/profile/sam.bsky.social/post/3lbq2xkz7ck2a"
    assert (sam.author, sam.lang, sam.text) == ("sam.bsky.social", "en",
                                                "how do I export my Nimbus notes to PDF?")
    assert jo.lang == "fr"
    assert not first.more
    hw = load_cursor(first.cursor)["hw"]

    newer = fixture_json("bluesky_search_p1.json")
    for n, post in enumerate(newer["posts"]):
        post["uri"] += "new"
        post["indexedAt"] = f"2025-11-23T13:0{5 - n}:00.000Z"
    source_server.reset(path, SourceServer.json(newer),
                        SourceServer.file("bluesky_search_p2.json"))
    page1 = sky.fetch("search:nimbus", first.cursor)
    assert page1.more and len(page1.items) == 2
    request = source_server.requests_for(path)[-1]
    assert request.query["sort"] == "latest"
    assert request.query["since"] == datetime.fromtimestamp(hw, UTC).isoformat()
    page2 = sky.fetch("search:nimbus", page1.cursor)
    assert source_server.requests_for(path)[-1].query["cursor"] == "25"
    # The old post on page 2 is below the mark: the walk ends there.
    assert page2.items == [] and not page2.more


# -- Hacker News -----------------------------------------------------------------

def test_hacker_news_pages_and_numeric_filter(connect: Any,
                                              source_server: SourceServer) -> None:
    hn = connect(type="hackernews", queries=["nimbus"], page_size=2)
    path = "/api/v1/search_by_date"
    source_server.add(path, SourceServer.file("hn_search_p0.json"))
    first = hn.fetch("search:nimbus", None)
    comment, story = first.items
    assert comment.text == ("We switched to Nimbus last year. The sync engine is solid but "
                            "pricing for >50 seats is opaque.\nAnyone got a quote?")
    assert comment.url == "https://news.ycombinator.com/item?id=42110123"
    assert story.text == "Nimbus 5.0 released with end-to-end encryption"
    assert load_cursor(first.cursor) == {"hw": 1763895600.0}

    source_server.reset(path, SourceServer.file("hn_search_p0.json"),
                        SourceServer.file("hn_search_p1.json"))
    # The server filters by the mark; here the mark predates every fixture hit.
    page1 = hn.fetch("search:nimbus", '{"hw": 1763880000}')
    assert page1.more and len(page1.items) == 2
    req = source_server.requests_for(path)[-1]
    assert req.query["numericFilters"] == "created_at_i>=1763880000"
    assert req.query["page"] == "0"
    page2 = hn.fetch("search:nimbus", page1.cursor)
    assert source_server.requests_for(path)[-1].query["page"] == "1"
    assert ids(page2) == ["42100001"] and not page2.more
    assert load_cursor(page2.cursor) == {"hw": 1763895600.0}


# -- Stack Exchange --------------------------------------------------------------

def test_stack_exchange_pages_obey_backoff_and_throttle(
        connect: Any, source_server: SourceServer) -> None:
    se = connect(type="stackexchange", queries=["nimbus"], credentials={"key": "TOKEN"})
    path = "/2.3/search/advanced"
    source_server.add(path, SourceServer.file("se_search_p1.json"),
                      SourceServer.file("se_search_p1.json"),
                      SourceServer.file("se_search_p2.json"),
                      SourceServer.file("se_throttle.json", status=400))
    first = se.fetch("search:nimbus", None)
    [question] = first.items
    assert question.text.startswith("Nimbus SDK raises AuthError after token refresh\n"
                                    "After upgrading nimbus-sdk to 3.1")
    assert question.author == "Ravi P"
    req = source_server.requests_for(path)[-1]
    assert (req.query["site"], req.query["sort"], req.query["filter"]) == (
        "stackoverflow", "creation", "withbody")
    assert req.query["key"] == "s3cret"

    # A later walk: page 1 (has_more) then page 2 with a backoff request.
    state = load_cursor(first.cursor)
    state["hw"] = 1763880000
    page1 = se.fetch("search:nimbus", json.dumps(state))
    assert page1.more
    page2 = se.fetch("search:nimbus", page1.cursor)
    assert source_server.requests_for(path)[-1].query["page"] == "2"
    assert source_server.requests_for(path)[-1].query["fromdate"] == "1763880000"
    assert page2.wait_seconds == 10 and ids(page2) == ["79199990"]
    assert page2.items[0].author == "Mei & Co"
    with pytest.raises(RateLimited, match="throttle_violation"):
        se.fetch("search:nimbus", None)


# -- Discourse -------------------------------------------------------------------

def test_discourse_search_and_latest(connect: Any, source_server: SourceServer) -> None:
    forum = connect(type="discourse", queries=["nimbus"])
    source_server.add("/search.json", SourceServer.file("discourse_search.json"))
    page = forum.fetch("search:nimbus", None)
    first, reply = page.items
    assert source_server.requests[0].query["q"] == "nimbus order:latest"
    assert first.text.startswith("Nimbus sync stops after update\nAfter the 4.2 update")
    assert first.url == f"{source_server.url}/t/nimbus-sync-stops-after-update/9876/1"
    assert reply.text == "+1, same here with Nimbus on Windows 11."
    assert reply.url == f"{source_server.url}/t/sync-errors-on-windows/9870/4"
    assert load_cursor(page.cursor) == {"hw": 51234.0}

    latest = connect(type="discourse", name="forum-latest", mode="latest")
    source_server.add("/posts.json", SourceServer.file("discourse_latest.json"))
    [post] = latest.fetch("latest", None).items
    assert post.text == ("Nimbus plugin for Obsidian?\nIs there a Nimbus plugin for Obsidian? "
                         "[link](https://example.com)")
    assert post.author == "ana" and post.source == "forum-latest"


# -- App Store -------------------------------------------------------------------

def test_app_store_reviews_and_a_single_entry_feed(connect: Any,
                                                   source_server: SourceServer) -> None:
    store = connect(type="appstore", apps=["us:1500000000"])
    base = "/us/rss/customerreviews/page={}/id=1500000000/sortby=mostrecent/json"
    source_server.add(base.format(1), SourceServer.file("appstore_reviews.json"),
                      SourceServer.file("appstore_single.json"),
                      SourceServer.file("appstore_reviews.json"))
    source_server.add(base.format(2), SourceServer.json({"feed": {"title": {"label": "x"}}}))
    first = store.fetch("us:1500000000", None)
    crash, praise = first.items
    assert crash.external_id == "12011223344" and crash.author == "MacUser77"
    assert crash.text == ("Crashes since 4.2\nThe app crashes every time I open a shared "
                          "notebook. Please fix!")
    assert crash.published_at == datetime(2025, 11, 23, 11, 12, 33, tzinfo=UTC)
    assert crash.url is None  # no per-review page; a shared URL would merge reviews
    # One review arrives as an object, not a list; it is newer than the mark.
    second = store.fetch("us:1500000000", first.cursor)
    assert ids(second) == ["12011300000"] and second.more
    # Page 2 is empty (Apple's answer past the last review): the walk ends.
    third = store.fetch("us:1500000000", second.cursor)
    assert len(source_server.requests_for(base.format(2))) == 1
    assert third.items == [] and not third.more
    assert load_cursor(third.cursor) == {"hw": 12011300000.0}
    # The next walk starts at page 1 again and stops at the mark.
    fourth = store.fetch("us:1500000000", third.cursor)
    assert fourth.items == [] and not fourth.more


# -- RSS / Atom ------------------------------------------------------------------

def test_rss_and_atom_feeds_with_conditional_get(connect: Any,
                                                 source_server: SourceServer) -> None:
    yt = f"{source_server.url}/feeds/videos.xml?channel_id=UCnimbusreviews000000000"
    news = f"{source_server.url}/news.rss"
    feeds = connect(type="rss", feeds=[yt, news])
    assert feeds.queries() == [yt, news]
    source_server.add("/feeds/videos.xml", SourceServer.file(
        "youtube_channel.xml", "application/atom+xml", headers={"ETag": '"v1"'}),
        Answer(304))
    source_server.add("/news.rss", SourceServer.file("news_rss.xml", "application/rss+xml"),
                      Answer(200, b"this is not a feed at all {", {"Content-Type": "text/plain"}))
    page = feeds.fetch(yt, None)
    [video] = page.items
    assert video.external_id == "yt:video:dQw4nimbus1"
    assert video.url == "https://www.youtube.com/watch?v=dQw4nimbus1"
    assert video.text.startswith("Nimbus X1 review: great screen, terrible battery")
    assert video.author == "Gadget Reviews Weekly"
    assert video.published_at == datetime(2025, 11, 22, 15, 0, 6, tzinfo=UTC)
    again = feeds.fetch(yt, page.cursor)
    assert source_server.requests_for("/feeds/videos.xml")[-1].headers["if-none-match"] == '"v1"'
    assert again.items == [] and again.cursor == page.cursor

    outage, broom = feeds.fetch(news, None).items
    assert outage.external_id == "techdaily-88123" and outage.lang == "en"
    assert outage.text == ("Nimbus outage hits European customers\nUsers of Nimbus reported "
                           "sync failures for two hours.")
    assert outage.author == "Jane Reporter"
    with pytest.raises(SourceUnavailable, match="not an RSS or Atom feed"):
        feeds.fetch(news, None)


# -- shared failure mapping --------------------------------------------------------

@pytest.mark.parametrize("header, expected", [("120", 120.0), (None, None),
                                              ("Wed, 21 Oct 2099 07:28:00 GMT", "future")])
def test_429_carries_retry_after(connect: Any, source_server: SourceServer,
                                 header: str | None, expected: Any) -> None:
    hn = connect(type="hackernews", queries=["nimbus"])
    headers = {"Retry-After": header} if header else {}
    source_server.add("/api/v1/search_by_date", SourceServer.json({"message": "slow down"},
                                                                  429, headers))
    with pytest.raises(RateLimited) as caught:
        hn.fetch("search:nimbus", None)
    if expected == "future":
        assert caught.value.retry_after is not None and caught.value.retry_after > 10**8
    else:
        assert caught.value.retry_after == expected


def test_errors_name_the_host_never_the_query_string(connect: Any,
                                                     source_server: SourceServer) -> None:
    se = connect(type="stackexchange", queries=["nimbus"], credentials={"key": "TOKEN"})
    source_server.add("/2.3/search/advanced", SourceServer.json({}, 503))
    with pytest.raises(SourceUnavailable) as caught:
        se.fetch("search:nimbus", None)
    assert "HTTP 503" in str(caught.value) and "s3cret" not in str(caught.value)
    assert "/2.3/search/advanced" in str(caught.value)


def test_timeout_is_a_source_failure(connect: Any, source_server: SourceServer) -> None:
    hn = connect(type="hackernews", queries=["nimbus"], timeout_seconds=0.2)
    source_server.add("/api/v1/search_by_date", Answer(200, b"{}", delay=1.0))
    with pytest.raises(SourceUnavailable, match="timed out"):
        hn.fetch("search:nimbus", None)
