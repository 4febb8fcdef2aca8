"""The poller: durable cursors, restarts, backoff, noise, dedup, the scheduler."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from scheduler.core import JobScheduler
from scheduler.jobs import add_source_jobs
from storage.db import Engine
from storage.sources import HEALTH, SourceSeen
from storage.tables import Mention, SourceState
from tests.sources.conftest import Clock, PollerFactory
from tests.sources.server import SourceServer, fixture_json


def mentions(engine: Engine) -> list[Mention]:
    with Session(engine) as session:
        return list(session.exec(select(Mention).order_by(Mention.id)))


def state(engine: Engine, source: str, query: str = HEALTH) -> SourceState:
    with Session(engine) as session:
        return session.exec(select(SourceState).where(SourceState.source == source,
                                                      SourceState.query_key == query)).one()


def listing(*posts: tuple[str, float, str], after: str | None = None) -> dict[str, Any]:
    children = [{"kind": "t3", "data": {
        "name": name, "created_utc": created, "title": title, "selftext": "",
        "author": f"user_{name}", "permalink": f"/r/x/comments/{name}/"}}
        for name, created, title in posts]
    return {"kind": "Listing", "data": {"after": after, "children": children}}


def test_restart_mid_walk_resumes_from_the_stored_cursor(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    source = {"type": "reddit", "base_url": source_server.url, "queries": ["nimbus"],
              "max_pages": 1}
    first_poller = make_poller([source])
    source_server.add("/search.json", SourceServer.json(listing(
        ("t3_a", 1000.0, "Nimbus a first post"))))
    assert first_poller.poll("reddit").ingested == 1

    # Three newer posts arrive over two pages; this poller reads one page per poll...
    source_server.reset("/search.json",
                        SourceServer.json(listing(("t3_d", 1300.0, "Nimbus d"),
                                                  ("t3_c", 1200.0, "Nimbus c"), after="t3_c")),
                        SourceServer.json(listing(("t3_b", 1100.0, "Nimbus b"),
                                                  ("t3_a", 1000.0, "Nimbus a first post"),
                                                  after="t3_a")))
    assert first_poller.poll("reddit").ingested == 2
    first_poller.close()

    # ...and "crashes". A new poller (a restart) resumes the walk at page two.
    restarted = make_poller([source])
    result = restarted.poll("reddit")
    assert result.ingested == 1
    assert source_server.requests_for("/search.json")[-1].query["after"] == "t3_c"
    assert [m.external_id for m in mentions(engine)] == ["t3_a", "t3_d", "t3_c", "t3_b"]
    # The walk is over: the next poll starts at the top again, from the new mark.
    source_server.reset("/search.json", SourceServer.json(listing(
        ("t3_d", 1300.0, "Nimbus d"), ("t3_c", 1200.0, "Nimbus c"), after="t3_c")))
    again = restarted.poll("reddit")
    assert again.ingested == 0 and "after" not in source_server.requests[-1].query
    counters = state(engine, "reddit", "search:nimbus").counters
    assert counters["ingested"] == 4 and counters["seen"] >= 2


def test_429_backs_off_for_retry_after_without_real_sleeps(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine,
        clock: Clock) -> None:
    poller = make_poller([{"type": "hackernews", "base_url": source_server.url,
                           "queries": ["nimbus"]}])
    path = "/api/v1/search_by_date"
    source_server.add(path, SourceServer.json({"message": "too many"}, 429,
                                              {"Retry-After": "120"}),
                      SourceServer.file("hn_search_p1.json"))
    failed = poller.poll("hackernews")
    assert failed.status == "failed" and "429" in (failed.error or "")
    health = state(engine, "hackernews")
    assert health.consecutive_failures == 1
    assert health.backoff_until == clock.now + timedelta(seconds=120)

    clock.advance(seconds=119)
    assert poller.poll("hackernews").status == "backoff"
    assert len(source_server.requests_for(path)) == 1  # no request while backing off
    clock.advance(seconds=2)
    ok = poller.poll("hackernews")
    assert ok.status == "ok" and ok.ingested == 1
    health = state(engine, "hackernews")
    assert health.consecutive_failures == 0 and health.backoff_until is None
    assert health.last_success_at == clock.now
    assert "429" in (health.last_error or "")  # the last error stays visible


def test_server_errors_back_off_exponentially(make_poller: PollerFactory,
                                              source_server: SourceServer, engine: Engine,
                                              clock: Clock) -> None:
    poller = make_poller([{"type": "hackernews", "base_url": source_server.url,
                           "queries": ["nimbus"]}])
    source_server.add("/api/v1/search_by_date", SourceServer.json({}, 502))
    delays = []
    for _ in range(3):
        assert poller.poll("hackernews").status == "failed"
        until = state(engine, "hackernews").backoff_until
        assert until is not None
        delays.append((until - clock.now).total_seconds())
        clock.now = until
    assert delays == [60.0, 120.0, 240.0]
    assert state(engine, "hackernews").last_error == "127.0.0.1:{}/api/v1/search_by_date: " \
        "HTTP 502".format(source_server.url.rsplit(":", 1)[1])


def test_stack_exchange_backoff_field_pauses_without_counting_a_failure(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine,
        clock: Clock) -> None:
    poller = make_poller([{"type": "stackexchange", "base_url": source_server.url,
                           "queries": ["nimbus", "nimbus sdk"]}])
    source_server.add("/2.3/search/advanced", SourceServer.file("se_search_p2.json"))
    result = poller.poll("stackexchange")
    assert result.status == "ok"
    health = state(engine, "stackexchange")
    assert health.consecutive_failures == 0
    assert health.backoff_until == clock.now + timedelta(seconds=10)
    # The server asked for a pause, so the second query waits for the next poll.
    assert len(source_server.requests) == 1
    assert poller.poll("stackexchange").status == "backoff"


def test_noise_is_dropped_and_counted_per_reason(make_poller: PollerFactory,
                                                 source_server: SourceServer,
                                                 engine: Engine) -> None:
    poller = make_poller([
        {"type": "rss", "base_url": source_server.url,
         "feeds": [f"{source_server.url}/news.rss"]},
        {"type": "mastodon", "base_url": source_server.url, "hashtags": ["nimbus"],
         "languages": ["en"]},
    ])
    source_server.add("/news.rss", SourceServer.file("news_rss.xml", "application/rss+xml"))
    statuses = fixture_json("mastodon_tag.json")
    farm = dict(statuses[1], id="113529760000000001", url="https://mastodon.social/@spam/1",
                account={"acct": "spam"},
                content="<p>nimbus keys http://a.example http://b.example http://c.example "
                        "http://d.example</p>")
    statuses.append(farm)
    copy_text = "Nimbus is giving away free licences today, claim yours before it ends"
    for n in range(2):
        statuses.append(dict(statuses[1], id=f"11352975000000000{n}",
                             url=f"https://mastodon.social/@bot{n}/1",
                             account={"acct": f"bot{n}"}, content=f"<p>{copy_text}</p>"))
    source_server.add("/api/v1/timelines/tag/nimbus", SourceServer.json(statuses))
    assert poller.poll("rss").ingested == 1
    assert poller.poll("mastodon").ingested == 2

    rss = state(engine, "rss", f"{source_server.url}/news.rss").counters
    assert rss == {"fetched": 2, "ingested": 1, "noise:excluded_term": 1}
    masto = state(engine, "mastodon", "tag:nimbus").counters
    assert masto["noise:language"] == 1  # lena wrote in German; this source allows en
    assert masto["noise:link_farm"] == 1
    assert masto["noise:duplicate_text"] == 1  # the second bot's copy
    texts = [m.text for m in mentions(engine)]
    assert not any("Nimbus 2000" in t or "funktioniert" in t or "http://a" in t for t in texts)
    assert sum(copy_text in t for t in texts) == 1


def test_same_mention_from_two_sources_is_ingested_once(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    poller = make_poller([
        {"type": "rss", "name": "reddit-feed", "feeds": [f"{source_server.url}/search.rss"]},
        {"type": "reddit", "base_url": source_server.url, "queries": ["nimbus"]},
        {"type": "mastodon", "base_url": source_server.url, "hashtags": ["nimbus"]},
        {"type": "bluesky", "base_url": source_server.url, "queries": ["nimbus"]},
    ])
    # Reddit's Atom feed and its JSON API find the same post: same URL.
    source_server.add("/search.rss", SourceServer.file("reddit_search.atom",
                                                       "application/atom+xml"))
    source_server.add("/search.json", SourceServer.file("reddit_search_p1.json"))
    # A journalist cross-posts the same words on Mastodon and Bluesky.
    words = "Nimbus outage hits European customers: sync failed for two hours"
    statuses = fixture_json("mastodon_tag.json")[1:]
    statuses[0].update(content=f"<p>{words}</p>", account={"acct": "jane@journa.host"})
    source_server.add("/api/v1/timelines/tag/nimbus", SourceServer.json(statuses))
    posts = fixture_json("bluesky_search_p1.json")
    posts["posts"] = posts["posts"][:1]
    posts["posts"][0]["author"]["handle"] = "jane.bsky.social"
    posts["posts"][0]["record"]["text"] = words + "!"
    source_server.add("/xrpc/app.bsky.feed.searchPosts", SourceServer.json(posts))

    assert poller.poll("reddit-feed").ingested == 1
    assert poller.poll("reddit").ingested == 1  # the other post of the page
    assert poller.poll("mastodon").ingested == 1
    assert poller.poll("bluesky").ingested == 0
    assert state(engine, "reddit", "search:nimbus").counters["duplicate"] == 1
    assert state(engine, "bluesky", "search:nimbus").counters["duplicate"] == 1
    assert sorted((m.source, m.external_id) for m in mentions(engine)) == [
        ("mastodon", "113529770000000001"), ("reddit", "t3_1gq2b7x"),
        ("reddit-feed", "t3_1gq3c9z")]
    with Session(engine) as session:
        verdicts = session.exec(select(SourceSeen.source, SourceSeen.verdict)
                                .where(SourceSeen.verdict == "duplicate")).all()
    assert sorted(verdicts) == [("bluesky", "duplicate"), ("reddit", "duplicate")]


def test_one_broken_source_never_stops_the_others_on_the_scheduler(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine,
        clock: Clock) -> None:
    broken_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    poller = make_poller([
        {"type": "hackernews", "name": "hn-broken", "base_url": broken_url,
         "queries": ["nimbus"], "poll_seconds": 60, "timeout_seconds": 1},
        {"type": "hackernews", "base_url": source_server.url, "queries": ["nimbus"],
         "poll_seconds": 60},
    ])
    source_server.add("/api/v1/search_by_date", SourceServer.file("hn_search_p1.json"))
    scheduler = JobScheduler(engine, owner="test", clock=clock)
    add_source_jobs(scheduler, poller)
    ran = scheduler.tick(clock.now)
    assert sorted(name for name, _ in ran) == ["source:hackernews", "source:hn-broken"]
    assert state(engine, "hn-broken").consecutive_failures == 1
    assert [m.external_id for m in mentions(engine)] == ["42100001"]

    # Same period: nothing runs again. Next period: the healthy source polls again,
    # the broken one is still backing off (60 s) and makes no request.
    assert scheduler.tick(clock.now + timedelta(seconds=5)) == []
    clock.advance(seconds=61)
    assert len(scheduler.tick(clock.now)) == 2
    assert len(source_server.requests_for("/api/v1/search_by_date")) == 2
    assert state(engine, "hn-broken").consecutive_failures == 2


def test_a_private_feeds_credentials_never_reach_the_stored_error(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    """The error kept for /care sources names host, port and path: not the user and
    password of a feed URL like ``https://user:pass@host/feed``, nor its query string."""
    host_port = source_server.url.removeprefix("http://")
    feed = f"http://reader:hunter2@{host_port}/private.rss?token=s3cret"
    poller = make_poller([{"type": "rss", "feeds": [feed]}])
    source_server.add("/private.rss", SourceServer.json({}, 503))
    assert poller.poll("rss").status == "failed"
    errors = []
    with Session(engine) as session:
        errors = [s.last_error or "" for s in session.exec(select(SourceState))]
    assert f"{host_port}/private.rss: HTTP 503" in errors
    assert not any("hunter2" in e or "reader" in e or "s3cret" in e for e in errors)
