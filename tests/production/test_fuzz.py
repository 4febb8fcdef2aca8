"""Property-based tests: whatever arrives at the HTTP edge, the answer is a 2xx or a
4xx with a clear message — never a 500 — and the process keeps serving.

One bot server per test function (hypothesis runs every example against it);
SQLite only, to keep the suite fast. Each test ends with a valid request and a
health check, so a worker or thread killed by junk input would show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import build_runtime
from bot.classify.factory import rules_classifier
from bot.config import CareConfig, load_settings
from handlers.envelope import envelope_problems
from handlers.ids import CardAction, CardRef
from tests.harness.bot_server import (
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    eventually,
    start_bot_server,
)
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import (
    block_action,
    command_body,
    event_body,
    interaction_body,
    view_submission,
)

#: Fuzzing runs on SQLite only (speed); the edge cases it found run on both databases.
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

VALID = {"source": "twitter", "id": "fz-1", "author": "dana_k", "author_reach": 312,
         "url": "https://x.com/dana_k/status/1", "lang": "en",
         "published_at": "2026-11-23T09:14:00Z", "text": "my laptop won't boot, help"}

# -- strategies -------------------------------------------------------------

#: Text with the awkward parts of Unicode: NUL, lone surrogates, RTL marks,
#: combining characters, astral-plane emoji.
#: Slack bodies are UTF-8: no lone surrogates.
utf8_text = st.text(st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    ["\x00", "\u202e", "\U0001f525", "%", "&", "=", "payload", "{", "["])
odd_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),
        st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\u0301", "\U0001f525",
                         "\ufeff", "\n", "'", '"', "\\"]),
    ),
    max_size=80,
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    odd_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(odd_text, children, max_size=4)),
    max_leaves=12,
)
#: Values that are wrong for most fields, including numbers outside any column's range.
junk = st.one_of(json_values, st.integers(min_value=2**31), st.integers(max_value=-1),
                 st.sampled_from(["", " ", "9999-12-31T23:59:59-14:00",
                                  "0001-01-01T00:00:00+14:00", "ftp://x", "javascript:1",
                                  "x" * 5000]))
mention_field = st.sampled_from(sorted(VALID) + ["followers", "external_id", "author_handle"])


def dumps(value: Any) -> str:
    # ensure_ascii escapes lone surrogates as \\udXXX, which JSON parsers accept.
    return json.dumps(value, allow_nan=True)


@pytest.fixture
def bot(fake_slack: FakeSlack, database_url: str, care_config: CareConfig) -> Iterator[BotServer]:
    """The shared ``bot`` fixture, with Slack's pace raised: fuzzing is not about pacing,
    and the valid mentions a fuzz run ingests must not delay the final check."""
    settings = load_settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url, database_url=database_url,
        carebot_slack_rate=50, _env_file=None,
    )
    runtime = build_runtime(settings, config=care_config,
                            classifier=rules_classifier(care_config), poll=0.2)
    server = start_bot_server(runtime)
    yield server
    server.stop()
    runtime.engine.dispose()


# -- checks -----------------------------------------------------------------


def assert_clear_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.text.strip(), f"{response.status_code} without a message"


@pytest.fixture
def traceback_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Fails the test when anything logged a traceback (a swallowed bug is a bug)."""
    caplog.set_level(logging.WARNING)
    yield caplog
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert not tracebacks, "\n".join(f"{r.name}: {r.getMessage()}" for r in tracebacks)


def assert_still_serving(bot: BotServer, fake_slack: FakeSlack) -> None:
    assert bot.http.get(f"{bot.url}/healthz").json() == {"status": "ok"}
    marker = {**VALID, "id": "still-serving-after-fuzz"}
    answer = bot.ingest(marker)
    assert answer.status_code == 202, answer.text
    mention_id = answer.json()["ids"][0]
    post = eventually(lambda: next(
        (p for p in fake_slack.ok_calls("chat.postMessage")
         if (p.params.get("metadata") or {}).get("event_payload", {}).get("mention_id")
         == mention_id), None),
        timeout=30)
    # And a real click still goes through the Slack edge.
    click = bot.click(CardAction.CLAIM, CardRef(m=mention_id).dump(), user="U0ALICE",
                      channel=post.params["channel"], message_ts=fake_slack.ts_of(post))
    assert click.status_code == 200
    fake_slack.wait_for("chat.update")


# -- POST /ingest -------------------------------------------------------------


@SQLITE
def test_ingest_random_json(bot: BotServer, fake_slack: FakeSlack,
                            traceback_log: pytest.LogCaptureFixture) -> None:
    @FUZZ
    @given(body=json_values)
    def check(body: Any) -> None:
        assert_clear_answer(bot.ingest(dumps(body)))

    check()
    assert_still_serving(bot, fake_slack)


@SQLITE
def test_ingest_random_bytes(bot: BotServer, fake_slack: FakeSlack,
                             traceback_log: pytest.LogCaptureFixture) -> None:
    @FUZZ
    @given(body=st.binary(max_size=300))
    def check(body: bytes) -> None:
        response = bot.ingest(body)
        assert_clear_answer(response)
        if response.status_code == 422:
            assert response.json()["detail"][0]["loc"] == "body"

    check()
    assert_still_serving(bot, fake_slack)


@SQLITE
def test_ingest_one_bad_field(bot: BotServer, fake_slack: FakeSlack,
                              traceback_log: pytest.LogCaptureFixture) -> None:
    """A valid-looking mention (alone or in a batch) with one field junk: 202 or 422 naming it."""

    counter = iter(range(10**6))

    @FUZZ
    @given(field=mention_field, value=junk, batch=st.booleans())
    def check(field: str, value: Any, batch: bool) -> None:
        item = {**VALID, "id": f"fz-{next(counter)}", field: value}
        body: Any = [dict(VALID, id=f"fz-ok-{next(counter)}"), item] if batch else item
        response = bot.ingest(dumps(body))
        assert_clear_answer(response)
        if response.status_code == 422:
            detail = response.json()["detail"]
            assert detail and all(d["msg"] for d in detail)
            if batch:  # the bad item is named by its position; nothing of the batch stored
                assert all(d["loc"].startswith("1") for d in detail), detail
        else:
            assert response.status_code == 202, response.text

    check()
    assert_still_serving(bot, fake_slack)


@SQLITE
def test_ingest_odd_unicode_text(bot: BotServer, fake_slack: FakeSlack,
                                 traceback_log: pytest.LogCaptureFixture) -> None:
    counter = iter(range(10**6))

    @FUZZ
    @given(text=odd_text, author=odd_text, size=st.sampled_from([1, 10, 39_999, 40_001]))
    def check(text: str, author: str, size: int) -> None:
        body = {**VALID, "id": f"uni-{next(counter)}", "author": author or "a",
                "text": (text or "x") * max(1, size // max(1, len(text or "x")))}
        response = bot.ingest(dumps(body))
        assert_clear_answer(response)
        assert response.status_code in (202, 422), response.text

    check()
    assert_still_serving(bot, fake_slack)


# -- POST /slack/events ---------------------------------------------------------


@SQLITE
def test_signed_junk_form_bodies(bot: BotServer, fake_slack: FakeSlack,
                                 traceback_log: pytest.LogCaptureFixture) -> None:
    @FUZZ
    @given(body=st.one_of(utf8_text,
                          st.dictionaries(utf8_text, utf8_text, max_size=4).map(urlencode)),
           json_type=st.booleans())
    def check(body: str, json_type: bool) -> None:
        content_type = "application/json" if json_type else "application/x-www-form-urlencoded"
        response = bot.post_slack(body, content_type=content_type)
        assert_clear_answer(response)

    check()
    assert_still_serving(bot, fake_slack)


@SQLITE
def test_signed_payload_with_junk_json(bot: BotServer, fake_slack: FakeSlack,
                                       traceback_log: pytest.LogCaptureFixture) -> None:
    @FUZZ
    @given(payload=st.one_of(utf8_text, json_values.map(dumps)))
    def check(payload: str) -> None:
        response = bot.post_slack(urlencode({"payload": payload}))
        assert_clear_answer(response)

    check()
    assert_still_serving(bot, fake_slack)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    doc = json.loads(json.dumps(doc))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return doc


ACTIONS = [a.value for a in CardAction]
BLOCK_ACTION = block_action(CardAction.CLAIM, CardRef(m=1).dump(), user="U0ALICE",
                            channel="C0SUPPORT", message_ts="1700000000.000100")
BLOCK_ACTION_PATHS = _paths(BLOCK_ACTION)


@SQLITE
def test_block_actions_with_missing_or_wrong_fields(
        bot: BotServer, fake_slack: FakeSlack,
        traceback_log: pytest.LogCaptureFixture) -> None:
    @FUZZ
    @given(action_id=st.sampled_from(ACTIONS), path=st.sampled_from(BLOCK_ACTION_PATHS),
           value=junk, delete=st.booleans(),
           button_value=st.one_of(st.just(CardRef(m=1).dump()), odd_text,
                                  json_values.map(dumps)))
    def check(action_id: str, path: tuple[Any, ...], value: Any, delete: bool,
              button_value: str) -> None:
        payload = block_action(action_id, button_value, user="U0ALICE", channel="C0SUPPORT",
                               message_ts="1700000000.000100")
        payload = _mutate(payload, path, value, delete)
        response = bot.post_slack(interaction_body(payload))
        assert_clear_answer(response)

    check()
    assert_still_serving(bot, fake_slack)


@SQLITE
def test_slash_commands_with_odd_text(bot: BotServer, fake_slack: FakeSlack,
                                      traceback_log: pytest.LogCaptureFixture) -> None:
    words = st.sampled_from(["help", "queue", "stats", "sources", "watch", "digest", "export",
                             "-1", "9" * 30, "<@U0X>", "<#C0X|x>", "*", "--", "\u202e"])

    @FUZZ
    @given(text=st.one_of(utf8_text, st.lists(st.one_of(words, utf8_text), max_size=5)
                          .map(" ".join)),
           user=st.one_of(st.just("U0MANAGER"), utf8_text))
    def check(text: str, user: str) -> None:
        body = command_body("/care", text, user=user or "U0X")
        assert_clear_answer(bot.post_slack(body))

    check()
    assert_still_serving(bot, fake_slack)


EVENT = json.loads(event_body({"type": "app_mention", "user": "U0ALICE", "text": "hi",
                               "ts": "1700000000.000200", "channel": "C0SUPPORT"},
                              event_id="Ev0FUZZ"))
EVENT_PATHS = _paths(EVENT)


@SQLITE
def test_event_callbacks_with_junk(bot: BotServer, fake_slack: FakeSlack,
                                   traceback_log: pytest.LogCaptureFixture) -> None:
    counter = iter(range(10**6))

    @FUZZ
    @given(event_type=st.sampled_from(["app_mention", "message", "app_home_opened",
                                       "reaction_added", "nonsense"]),
           path=st.sampled_from(EVENT_PATHS), value=junk, delete=st.booleans())
    def check(event_type: str, path: tuple[Any, ...], value: Any, delete: bool) -> None:
        doc = {**EVENT, "event_id": f"Ev{next(counter)}",
               "event": {**EVENT["event"], "type": event_type, "thread_ts": "1700000000.0001"}}
        doc = _mutate(doc, path, value, delete)
        response = bot.post_slack(dumps(doc), content_type="application/json")
        assert_clear_answer(response)

    check()
    assert_still_serving(bot, fake_slack)


# -- what the fuzzing found, pinned on SQLite and PostgreSQL -----------------------


@pytest.mark.parametrize(("field", "value", "message"), [
    ("text", "help\x00me", "NUL"),
    ("author_reach", 2**31, "less than or equal"),
    ("published_at", "9999-12-31T23:59:59-14:00", "out of range"),
])
def test_ingest_values_the_database_cannot_store_are_422(
        bot: BotServer, field: str, value: Any, message: str) -> None:
    response = bot.ingest([{**VALID, "id": "edge-ok"}, {**VALID, "id": "edge-bad", field: value}])
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == f"1.{field}" and message in problem["msg"]
    # Nothing of the batch was stored: the valid item goes in when resent alone.
    assert bot.ingest({**VALID, "id": "edge-ok"}).json()["accepted"] == 1


@pytest.mark.parametrize(("body", "loc"), [
    ("payload=", "body"),
    ("payload=%5B1%5D", "body"),
    ("payload=" + json.dumps({"type": "block_actions", "user": {"id": "U1"}, "actions": {}}),
     "actions"),
    ("payload=" + json.dumps({"type": "block_actions", "user": "U1",
                              "actions": [{"action_id": "card.claim"}]}), "user"),
])
def test_signed_malformed_slack_bodies_get_400_naming_the_field(
        bot: BotServer, body: str, loc: str) -> None:
    response = bot.post_slack(body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed Slack payload"
    assert response.json()["detail"][0]["loc"] == loc


def test_unsigned_junk_is_refused_before_it_is_read(bot: BotServer) -> None:
    response = bot.post_slack("payload=not-json", secret="wrong-secret")
    assert response.status_code == 401


@pytest.mark.parametrize("body", [
    block_action(CardAction.CLAIM, CardRef(m=1).dump(), user="U1", channel="C1",
                 message_ts="1.2"),
    view_submission("modal.note", {"b": {"a": {"type": "plain_text_input", "value": "x"}}},
                    user="U1", private_metadata='{"m":1}'),
    {"type": "interactive_message", "user": {"id": "U1"}, "actions": [{"name": "legacy"}]},
    dict(parse_qsl(command_body("/care", "stats 7d"))),
    json.loads(event_body({"type": "channel_created",
                           "channel": {"id": "C1", "name": "x", "creator": "U1"}},
                          event_id="Ev1")),
    json.loads(event_body({"type": "user_change", "user": {"id": "U1", "profile": {}}},
                          event_id="Ev2")),
    {"type": "url_verification", "token": "t", "challenge": "abc"},
    {"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1518467820},
])
def test_real_slack_shapes_pass_the_envelope_check(body: dict[str, Any]) -> None:
    assert envelope_problems(body) == []


def test_oversized_bodies_are_refused_without_being_buffered(bot: BotServer) -> None:
    """/slack/events must read a body before it can check its signature, so an
    unauthenticated caller could make the bot buffer any size: over 2 MB (Slack's
    requests are a few hundred kB) it is refused by Content-Length or while it
    streams in; /ingest likewise over 5 MB. Nothing is stored, and the bot serves on."""
    from bot.app import MAX_INGEST_BYTES, MAX_SLACK_BYTES

    def chunks(total: int) -> Iterator[bytes]:  # no Content-Length: chunked encoding
        for _ in range(total // 65536 + 1):
            yield b"x" * 65536

    huge = "payload=" + "x" * MAX_SLACK_BYTES
    assert bot.post_slack(huge, secret="wrong-secret").status_code == 413
    streamed = bot.http.post(f"{bot.url}/slack/events", content=chunks(MAX_SLACK_BYTES))
    assert streamed.status_code == 413

    item = {**VALID, "id": "big-1"}
    padded = json.dumps([item, {**VALID, "id": "big-2", "text": "y" * MAX_INGEST_BYTES}])
    assert bot.ingest(padded).status_code == 413
    streamed = bot.http.post(f"{bot.url}/ingest", content=chunks(MAX_INGEST_BYTES),
                             headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    assert streamed.status_code == 413
    # Just under the cap is read and judged on its content as before.
    assert bot.ingest(json.dumps([item])).json()["accepted"] == 1
    assert bot.post_slack("payload=not-json", secret="wrong-secret").status_code == 401
    assert bot.http.get(f"{bot.url}/healthz").status_code == 200
