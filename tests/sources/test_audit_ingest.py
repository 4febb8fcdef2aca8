"""Audit: what a listening source, ``POST /ingest`` and ``carebot import`` do with
the odd inputs real feeds, feeders and files send."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import Session, create_engine, select

from storage.db import Engine
from storage.tables import Mention
from tests.cli.test_demo_and_import import carebot
from tests.harness.bot_server import BotServer
from tests.sources.conftest import PollerFactory
from tests.sources.server import Answer, SourceServer


def stored(engine: Engine) -> list[Mention]:
    with Session(engine) as session:
        return list(session.exec(select(Mention).order_by(Mention.id)))


def rss(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            '<title>Nimbus forum</title><link>https://forum.example/</link>'
            + "".join(items) + "</channel></rss>").encode()


RSS_TYPE = {"Content-Type": "application/rss+xml"}


def forum(make_poller: PollerFactory, source_server: SourceServer) -> object:
    return make_poller([{"type": "rss", "name": "forum",
                         "feeds": [f"{source_server.url}/feed.rss"]}])


# -- listening sources ------------------------------------------------------------

def test_one_unstorable_item_does_not_stall_the_whole_feed(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    """A NUL character (PostgreSQL text cannot hold it) or a link longer than the
    2,048-character column used to fail the whole page on every poll: the source
    backed off forever and none of the feed's mentions came in."""
    poller = forum(make_poller, source_server)
    long_link = "https://forum.example/t/" + "x" * 3000
    source_server.add("/feed.rss", Answer(200, rss(
        "<item><guid>a</guid><title>Nimbus sync broken</title>"
        "<description>since the update&#0; help</description></item>",
        f"<item><guid>b</guid><link>{long_link}</link><title>Nimbus won't boot</title></item>",
        "<item><guid>c</guid><title>Nimbus is great</title></item>"), RSS_TYPE))
    result = poller.poll("forum")
    assert (result.status, result.error, result.ingested) == ("ok", None, 3)
    rows = {m.external_id: m for m in stored(engine)}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["a"].text == "Nimbus sync broken\nsince the update help"
    assert rows["b"].url is None or len(rows["b"].url) <= 2048


def test_long_feed_ids_sharing_a_prefix_are_two_mentions(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    """Ids were cut to 255 characters, so two items whose guids share that much were
    one mention, and the second was lost as a duplicate; now an overlong id becomes a
    stable hashed key, and polling again stores nothing new."""
    poller = forum(make_poller, source_server)
    prefix = "https://forum.example/t/" + "p" * 300
    feed = rss(f"<item><guid>{prefix}/1</guid><title>Nimbus sync broken</title></item>",
               f"<item><guid>{prefix}/2</guid><title>Nimbus backup fails</title></item>")
    source_server.add("/feed.rss", Answer(200, feed, RSS_TYPE))
    assert poller.poll("forum").ingested == 2
    ids = [m.external_id for m in stored(engine)]
    assert len(set(ids)) == 2 and all(len(i) <= 255 for i in ids)
    source_server.add("/feed.rss", Answer(200, feed, RSS_TYPE))
    assert poller.poll("forum").ingested == 0 and len(stored(engine)) == 2



def test_a_cut_emoji_in_a_json_api_does_not_stall_the_source(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    """APIs that cut text at UTF-16 code units send half an emoji (a lone
    surrogate, legal JSON); hashing or storing it raised on every poll."""
    poller = make_poller([{"type": "reddit", "base_url": source_server.url,
                           "queries": ["nimbus"]}])
    listing = ('{"kind": "Listing", "data": {"after": null, "children": ['
               '{"kind": "t3", "data": {"name": "t3_a", "created_utc": 1000.0, '
               '"title": "Nimbus ate my files \\ud83d", "selftext": "", "author": "dana", '
               '"permalink": "/r/x/comments/a/"}}, '
               '{"kind": "t3", "data": {"name": "t3_b", "created_utc": 999.0, '
               '"title": "Nimbus sync is fast \\ud83d\\ude00", "selftext": "", '
               '"author": "lars", "permalink": "/r/x/comments/b/"}}]}}')
    source_server.add("/search.json", Answer(200, listing.encode(),
                                             {"Content-Type": "application/json"}))
    result = poller.poll("reddit")
    assert (result.status, result.error, result.ingested) == ("ok", None, 2)
    assert [m.text for m in stored(engine)] == ["Nimbus ate my files \ufffd",
                                                "Nimbus sync is fast \U0001f600"]

def test_an_html_page_instead_of_the_feed_is_a_failure_not_an_empty_feed(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    """A login wall, a bot challenge or a moved feed answers 200 with HTML; the
    source used to report "ok" with nothing in it, poll after poll."""
    poller = forum(make_poller, source_server)
    source_server.add("/feed.rss", Answer(200, b"<!DOCTYPE html><html><head><title>Just a "
                                               b"moment...</title></head><body><p>Checking "
                                               b"your browser</p></body></html>",
                                          {"Content-Type": "text/html; charset=UTF-8"}))
    result = poller.poll("forum")
    assert result.status == "failed"
    assert "not an RSS or Atom feed" in (result.error or "")
    # An empty but valid feed is still fine.
    source_server.reset("/feed.rss", Answer(200, rss(), RSS_TYPE))
    poller.services.clock.advance(hours=1)  # type: ignore[attr-defined]
    assert poller.poll("forum").status == "ok"


def test_a_feed_item_without_guid_or_link_is_ingested_once(
        make_poller: PollerFactory, source_server: SourceServer, engine: Engine) -> None:
    """RSS makes both optional; such an item used to be dropped without a trace."""
    poller = forum(make_poller, source_server)
    source_server.add("/feed.rss", Answer(200, rss(
        "<item><title>Nimbus backup failed</title>"
        "<description>my nimbus backup fails every night, help</description></item>",
        "<item><guid>b</guid><title>Nimbus is great</title></item>"), RSS_TYPE))
    assert poller.poll("forum").ingested == 2
    poller.services.clock.advance(minutes=10)  # type: ignore[attr-defined]
    again = poller.poll("forum")
    assert (again.status, again.ingested) == ("ok", 0)
    texts = [m.text for m in stored(engine)]
    assert texts.count("Nimbus backup failed\nmy nimbus backup fails every night, help") == 1


# -- POST /ingest ---------------------------------------------------------------------

def test_ingest_of_deeply_nested_json_is_a_422_not_a_500(bot: BotServer) -> None:
    """200 kB of nested brackets (well under the 5 MB cap) make json.loads raise
    RecursionError; the feeder gets a 422 on ``body``, not a bare 500."""
    response = bot.ingest(b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == "body"
    assert "nested too deeply" in response.json()["detail"][0]["msg"]


def test_ingest_counts_a_regional_language_tag_as_its_language(bot: BotServer) -> None:
    """Feeders send BCP 47 tags; "en-US" was stored as "en-us", which /care stats
    then counted apart from "en"."""
    base = {"source": "x", "author": "dana_k", "text": "my laptop won't boot, help"}
    response = bot.ingest([{**base, "id": "l1", "lang": "en-US"},
                           {**base, "id": "l2", "lang": "pt_BR"}, {**base, "id": "l3"}])
    assert response.status_code == 202, response.text
    langs = {m.external_id: m.lang for m in stored(bot.runtime.engine)}
    assert langs["l1"] == "en" and langs["l2"] == "pt"


# -- carebot import -----------------------------------------------------------------

ROWS = [{"source": "x", "id": "1", "author": "dana_k", "text": "my laptop won't boot, help"},
        {"source": "x", "id": "2", "author": "zoë", "text": "café app crashes since the update"}]


def imported(tmp_path: Path, name: str, content: bytes) -> tuple[object, list[tuple[str, str]]]:
    path = tmp_path / name
    path.write_bytes(content)
    db = f"sqlite:///{tmp_path / 'import.db'}"
    proc = carebot("import", str(path), cwd=tmp_path, env={"DATABASE_URL": db}, timeout=120)
    engine = create_engine(db)
    try:
        with Session(engine) as session:
            rows = [(m.external_id, m.author) for m in
                    session.exec(select(Mention).order_by(Mention.id))]
    except Exception:  # noqa: BLE001 - no table: the command died before migrating
        rows = []
    finally:
        engine.dispose()
    return proc, rows


def test_import_jsonl_written_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Windows tools (PowerShell, Notepad) write UTF-8 with a BOM; the first
    mention used to be rejected as "not valid JSON: Unexpected UTF-8 BOM"."""
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS)
    proc, rows = imported(tmp_path, "mentions.jsonl", b"\xef\xbb\xbf" + body.encode())
    assert proc.returncode == 0, proc.stderr
    assert "imported 2 new mention(s), 0 already stored, 0 invalid row(s)" in proc.stdout
    assert rows == [("1", "dana_k"), ("2", "zoë")]


def test_import_a_json_file_holding_a_list_like_the_ingest_body(tmp_path: Path) -> None:
    """``.json`` is accepted, but a JSON document (the list ``POST /ingest`` takes,
    pretty-printed) was read line by line and every line rejected."""
    proc, rows = imported(tmp_path, "mentions.json",
                          json.dumps(ROWS, indent=2, ensure_ascii=False).encode())
    assert proc.returncode == 0, proc.stderr
    assert "imported 2 new mention(s)" in proc.stdout
    assert rows == [("1", "dana_k"), ("2", "zoë")]
    # A bad element is reported by its position and skipped; the rest comes in.
    bad = [ROWS[0], {"source": "x", "id": "3", "text": "no author"}]
    proc, rows = imported(tmp_path, "more.json", json.dumps(bad).encode())
    assert "item 2: author" in proc.stderr and "Traceback" not in proc.stderr


def test_import_a_csv_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """Excel's plain "CSV" is Windows-1252: the import died with a traceback."""
    csv = "source,id,author,text\nx,1,zoë,café app crashes since the update\n"
    proc, rows = imported(tmp_path, "mentions.csv", csv.encode("cp1252"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "mentions.csv" in proc.stderr and "UTF-8" in proc.stderr
    assert rows == []
