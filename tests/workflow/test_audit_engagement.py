"""Audit of the engagement after the first click: replies through sources, the CRM
case webhook, after-action reviews and conversion tags, driven the way Slack does."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.config import CareConfig
from handlers.ids import CardAction, ModalCallback, MoreAction
from storage.workflow_tables import AfterActionReview, Conversion, Dispatch, Escalation, Reply
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack
from tests.sources.server import SourceServer
from tests.workflow.conftest import BotFactory, Clock
from tests.workflow.helpers import choose, click, post_card, selected, submit, text, wait_card

pytestmark = pytest.mark.usefixtures("paced")  # no exact durations asserted here

SECRET_ENV = "CAREBOT_AUDIT_CRM_SECRET"
SECRET = "audit-crm-signing-secret"
RANT = {"source": "twitter", "id": "9001", "author": "angry_al", "author_reach": 250000,
        "text": "worst support ever, never again", "url": "https://twitter.com/angry_al/9001"}


def rows(bot: BotServer, table: Any) -> list[Any]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(table)).all())


def ephemerals(fake: FakeSlack) -> list[str]:
    return [str(c.params.get("text")) for c in fake.all_calls("chat.postEphemeral")]


# -- replies through sources ----------------------------------------------------------

SOURCE_ENV = {"MASTODON_TOKEN": "masto-secret", "BSKY_HANDLE": "care.nimbus.example",
              "BSKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop"}


@pytest.fixture
def reply_bot(make_bot: BotFactory, workflow_config: CareConfig, source_server: SourceServer,
              monkeypatch: pytest.MonkeyPatch) -> BotServer:
    """The workflow bot with Mastodon and Bluesky sources that can reply."""
    for key, value in SOURCE_ENV.items():
        monkeypatch.setenv(key, value)
    data = workflow_config.model_dump(mode="json")
    data["sources"] = [
        {"type": "mastodon", "base_url": source_server.url, "hashtags": ["nimbus"],
         "credentials": {"token": "MASTODON_TOKEN"}, "enabled": False},
        {"type": "bluesky", "base_url": source_server.url, "queries": ["nimbus"],
         "credentials": {"identifier": "BSKY_HANDLE", "app_password": "BSKY_APP_PASSWORD"},
         "enabled": False},
    ]
    return make_bot(CareConfig.model_validate(data))


MASTO_CASE = {"source": "mastodon", "id": "113529771111111112", "author": "lena",
              "text": "nimbus app crashes on start, help",
              "url": "https://fosstodon.org/@lena/113529771111111112"}
BSKY_CASE = {"source": "bluesky", "id": "at://did:plc:lena/app.bsky.feed.post/3lbq1",
             "author": "lena.bsky.social", "text": "nimbus app crashes on start, help",
             "url": "https://bsky.app/profile/lena.bsky.social/post/3lbq1"}


@pytest.mark.parametrize(("item", "limit"), [(MASTO_CASE, 500), (BSKY_CASE, 300)],
                         ids=["mastodon", "bluesky"])
def test_a_reply_over_the_platforms_limit_is_refused_before_it_is_sent(
        reply_bot: BotServer, fake_slack: FakeSlack, source_server: SourceServer,
        item: dict[str, Any], limit: int) -> None:
    """Mastodon takes 500 characters (the @-mention carebot adds counts), Bluesky 300:
    a longer reply used to be queued, refused by the platform and retried for hours."""
    mention_id, channel, _ = post_card(reply_bot, fake_slack, item)
    # Mastodon: 497 characters, over the limit only with the "@lena " carebot adds.
    too_long = "x" * (limit - 3 if item is MASTO_CASE else limit + 1)
    answer = submit(reply_bot, ModalCallback.RESPOND, {"reply": text(too_long)},
                    user="U0ALICE", mention_id=mention_id, channel=channel)
    assert answer.status_code == 200
    body = answer.json()
    assert body["response_action"] == "errors"
    assert str(limit) in body["errors"]["reply"]  # says what the limit is
    assert rows(reply_bot, Reply) == [] and rows(reply_bot, Dispatch) == []

    # One that fits (with the @-mention Mastodon needs) is queued as before.
    fits = "We are sorry about the crash, a fix ships today." * (limit // 60)
    ok = submit(reply_bot, ModalCallback.RESPOND, {"reply": text(fits)}, user="U0ALICE",
                mention_id=mention_id, channel=channel)
    assert ok.status_code == 200 and ok.text == ""
    eventually(lambda: [r.status for r in rows(reply_bot, Reply)] != [])


def test_a_reply_to_a_deleted_post_fails_at_once_instead_of_for_hours(
        reply_bot: BotServer, fake_slack: FakeSlack, source_server: SourceServer,
        clock: Clock) -> None:
    """Mastodon answers 404 for a status that was deleted: retrying cannot help, so
    the reply becomes copy-ready text on the card after a few quick tries (it was
    retried 15 times over about six hours, the card saying "being sent" all along)."""
    source_server.add("/api/v1/statuses", SourceServer.json({"error": "Record not found"},
                                                            404), method="POST")
    mention_id, channel, ts = post_card(reply_bot, fake_slack, MASTO_CASE)
    submit(reply_bot, ModalCallback.RESPOND, {"reply": text("Sorry! Fixed in 4.2.1.")},
           user="U0ALICE", mention_id=mention_id, channel=channel)

    def failed() -> bool:
        clock.advance(seconds=30)  # every retry that is due comes due
        return [r.status for r in rows(reply_bot, Reply)] == ["failed"]

    eventually(failed, timeout=8, interval=0.1)
    tries = source_server.requests_for("/api/v1/statuses", "POST")
    assert 1 <= len(tries) <= 4
    blocks = wait_card(fake_slack, channel, ts, "Sending failed", clock=clock)
    assert "Mark responded" in json.dumps(blocks)


# -- the CRM case webhook -------------------------------------------------------------


@dataclass
class Crm:
    """A CRM webhook receiver on 127.0.0.1 answering from a script of
    ``(status, JSON body, headers)``; the last entry repeats."""

    script: list[tuple[int, Any, dict[str, str]]]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def crm() -> Iterator[Crm]:
    rec = Crm(script=[(201, {"case_id": "CASE-1"}, {})])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with rec.lock:
                n = len(rec.requests)
                rec.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status, payload, headers = rec.script[min(n, len(rec.script) - 1)]
            answer = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/cases"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def crm_bot(make_bot: BotFactory, workflow_config: CareConfig, crm: Crm, fake_slack: FakeSlack,
            monkeypatch: pytest.MonkeyPatch) -> BotServer:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    fake_slack.usergroups["S0ESCALATORS"] = ["U0ESCALATOR"]
    data = workflow_config.model_dump(mode="json")
    data["workflow"]["escalation"].update(crm_webhook_url=crm.url, crm_secret_env=SECRET_ENV)
    return make_bot(CareConfig.model_validate(data))


def escalate(bot: BotServer, mention_id: int, channel: str, *, user: str = "U0ESCALATOR",
             severity: str = "sev2") -> None:
    response = submit(bot, ModalCallback.ESCALATE, {"severity": selected(severity),
                                                   "reason": text("Going viral")},
                      user=user, mention_id=mention_id, channel=channel)
    assert response.status_code == 200 and response.text == ""


def the_escalation(bot: BotServer) -> Escalation | None:
    found = rows(bot, Escalation)
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.parametrize(("answer", "shown"), [
    pytest.param({"case_id": None, "id": "CASE-77"}, "CRM case `CASE-77`"),
    pytest.param({"case_id": {"number": 5}}, "CRM case opened"),
    pytest.param({"case_id": True}, "CRM case opened"),
    ({"case_id": "  "}, "CRM case opened"),
    ({}, "CRM case opened"),
    ({"case_id": 123456}, "CRM case `123456`"),
], ids=["null-case_id-then-id", "object", "bool", "blank", "none", "number"])
def test_a_case_id_in_an_unexpected_shape_is_not_shown_as_garbage(
        crm_bot: BotServer, fake_slack: FakeSlack, crm: Crm, answer: dict[str, Any],
        shown: str) -> None:
    """The doc: the JSON ``case_id`` (or ``id``) goes onto the card. A blank one went
    onto the card as an empty code span, and a CRM that opened the case without
    saying its id left the card saying nothing about the CRM at all. (A null case_id
    hid a good ``id``; an object or a boolean went on as Python's repr.)"""
    crm.script = [(201, answer, {})]
    mention_id, channel, ts = post_card(crm_bot, fake_slack, RANT)
    escalate(crm_bot, mention_id, channel)
    eventually(lambda: (row := the_escalation(crm_bot)) and row.crm_status == "created")
    blocks = json.dumps(wait_card(fake_slack, channel, ts, shown, timeout=4))
    assert "{'" not in blocks and "True" not in blocks and "``" not in blocks
    assert "CRM case being opened" not in blocks


def test_each_webhook_try_is_signed_afresh_and_verifiable(
        crm_bot: BotServer, fake_slack: FakeSlack, crm: Crm, clock: Clock) -> None:
    """A receiver verifies HMAC-SHA256(secret, "<timestamp>." + body) over the raw bytes
    it got, with one Idempotency-Key for every try; each try carries its own timestamp,
    so a receiver refusing stale timestamps (replay protection) takes a late retry."""
    crm.script = [(503, {"error": "busy"}, {}), (201, {"case_id": "CASE-9"}, {})]
    mention_id, channel, ts = post_card(crm_bot, fake_slack, RANT)
    escalate(crm_bot, mention_id, channel)
    eventually(lambda: len(crm.requests) == 1)
    clock.advance(hours=1)
    wait_card(fake_slack, channel, ts, "CRM case `CASE-9`", clock=clock, timeout=4)
    escalation = the_escalation(crm_bot)
    assert escalation is not None and len(crm.requests) == 2
    stamps = []
    for headers, body in crm.requests:
        stamp = headers["x-carebot-timestamp"]
        expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        assert headers["x-carebot-signature"] == f"sha256={expected}"
        assert headers["idempotency-key"] == f"carebot-escalation-{escalation.id}"
        assert json.loads(body)["mention"]["id"] == mention_id
        stamps.append(int(stamp))
    assert stamps[1] - stamps[0] >= 3600


def test_a_silly_retry_after_does_not_wedge_the_webhook(
        crm_bot: BotServer, fake_slack: FakeSlack, crm: Crm, clock: Clock) -> None:
    """``Retry-After: nan`` (or one past the year 9999) made recording the failure raise
    in the dispatch worker: the row stayed leased, was sent again each time its lease
    ran out, and could never be parked."""
    crm.script = [(503, {"error": "busy"}, {"Retry-After": "nan"}),
                  (503, {"error": "busy"}, {"Retry-After": "1e12"}),
                  (201, {"case_id": "CASE-9"}, {})]
    mention_id, channel, ts = post_card(crm_bot, fake_slack, RANT)
    escalate(crm_bot, mention_id, channel)

    def dispatched() -> Dispatch:
        [row] = rows(crm_bot, Dispatch)
        assert isinstance(row, Dispatch)
        return row

    for attempt in (1, 2):
        eventually(lambda a=attempt: len(crm.requests) == a)  # type: ignore[misc]
        row = eventually(lambda a=attempt: (r := dispatched()).attempts == a
                         and r.lease_owner is None and r, timeout=3)  # type: ignore[misc]
        assert row.last_error == "HTTP 503"
        assert row.next_attempt_at - clock() <= timedelta(hours=1)
        clock.advance(hours=1)
    wait_card(fake_slack, channel, ts, "CRM case `CASE-9`", clock=clock, timeout=4)


def test_dispatch_requeue_never_sends_a_reply_staff_already_posted_by_hand(
        reply_bot: BotServer, fake_slack: FakeSlack, source_server: SourceServer,
        clock: Clock) -> None:
    """Mastodon cannot find the posts (404, e.g. an instance mid-migration): the
    replies become copy-ready; Alice posts hers by hand and marks it responded, Bob's
    waits. Once Mastodon is back,
    ``carebot dispatch requeue`` sent Alice's again (the customer got it twice) and
    sent Bob's without recording it (his card still said "Sending failed — post it")."""
    from click.testing import CliRunner

    from bot.cli import main as cli

    source_server.add("/api/v1/statuses", SourceServer.json({"error": "Record not found"},
                                                            404), method="POST")
    alice_id, alice_ch, alice_ts = post_card(reply_bot, fake_slack, MASTO_CASE)
    bob_id, bob_ch, bob_ts = post_card(reply_bot, fake_slack, {**MASTO_CASE, "id": "11352",
                                                                "author": "tom"})
    for mid, ch, user in ((alice_id, alice_ch, "U0ALICE"), (bob_id, bob_ch, "U0BOB")):
        submit(reply_bot, ModalCallback.RESPOND, {"reply": text(f"Sorry! from {user}")},
               user=user, mention_id=mid, channel=ch)

    def both_failed() -> bool:
        clock.advance(minutes=5)
        replies = rows(reply_bot, Reply)
        return len(replies) == 2 and all(r.status == "failed" for r in replies)

    eventually(both_failed, timeout=8, interval=0.1)
    wait_card(fake_slack, alice_ch, alice_ts, "Sending failed", clock=clock)
    click(reply_bot, CardAction.CONFIRM_RESPONDED, alice_id, user="U0ALICE", channel=alice_ch,
          ts=alice_ts)
    wait_card(fake_slack, alice_ch, alice_ts, "Responded by <@U0ALICE>", clock=clock)

    source_server.reset("/api/v1/statuses", SourceServer.json(
        {"id": "1", "url": "https://fosstodon.org/@care/1"}), method="POST")
    before = len(source_server.requests_for("/api/v1/statuses", "POST"))
    result = CliRunner().invoke(cli, ["dispatch", "requeue"], env={
        "DATABASE_URL": reply_bot.runtime.engine.url.render_as_string(hide_password=False)})
    assert result.exit_code == 0, result.output
    # The CLI stamps the requeue with the real time; bring the bot's clock past it.
    clock.advance(seconds=max(0.0, (datetime.now(UTC) - clock()).total_seconds()) + 1)
    reply_bot.runtime.services._notify("dispatch")
    wait_card(fake_slack, bob_ch, bob_ts, "Responded by <@U0BOB>", clock=clock)
    sent = [r.json()["status"] for r in
            source_server.requests_for("/api/v1/statuses", "POST")[before:]]
    assert sent == ["@tom Sorry! from U0BOB"]
    assert {r.author: r.status for r in rows(reply_bot, Reply)} == {"U0ALICE": "confirmed",
                                                                     "U0BOB": "sent"}


# -- after-action reviews and conversions ------------------------------------------


def test_a_reviewed_escalation_is_not_reviewed_again_when_resolved_again(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    """Resolve → review written → an admin reopens → resolved again: the escalator
    was DMed for the same escalation's review a second time."""
    mention_id, channel, ts = post_card(wbot, fake_slack, RANT)
    escalate(wbot, mention_id, channel)
    wait_card(fake_slack, channel, ts, "Escalated (SEV2)", clock=clock)
    click(wbot, CardAction.RESOLVE, mention_id, user="U0ALICE", channel=channel, ts=ts)

    def dms() -> list[Any]:
        return [c for c in fake_slack.ok_calls("chat.postMessage")
                if c.params["channel"] == "U0ESCALATOR"]

    eventually(lambda: len(dms()) == 1)
    escalation = the_escalation(wbot)
    assert escalation is not None
    answer = {"outcome": text("Calmed down"), "without": text("Would have trended"),
              "appropriate": {"value": {"type": "radio_buttons",
                                        "selected_option": {"value": "yes"}}}}
    submit(wbot, ModalCallback.REVIEW, answer, user="U0ESCALATOR", mention_id=mention_id,
           escalation=escalation.id)
    eventually(lambda: rows(wbot, AfterActionReview))

    click(wbot, CardAction.REOPEN, mention_id, user="U0LEAD", channel=channel, ts=ts)
    eventually(lambda: "reopened" in [a for _, a in actions_of(wbot, mention_id)])
    click(wbot, CardAction.RESOLVE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    eventually(lambda: [a for _, a in actions_of(wbot, mention_id)].count("resolved") == 2)
    wait_card(fake_slack, channel, ts, "Resolved by <@U0ALICE>", clock=clock)
    assert [a for _, a in actions_of(wbot, mention_id)].count("review_requested") == 1
    assert len(dms()) == 1


def actions_of(bot: BotServer, mention_id: int) -> list[tuple[str, str]]:
    from tests.workflow.helpers import actions
    return actions(bot, mention_id)


def test_a_conversion_cannot_be_tagged_on_a_mention_marked_noise(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock) -> None:
    """Noise is no engagement: its card offers no "Tag conversion", but the form
    opened from the card a moment before (or a stale card's menu) still recorded
    one, and it counted in /care conversions and App Home's score."""
    case = {"source": "twitter", "id": "9100", "author": "kim_l", "text": "app crashes, help"}
    mention_id, channel, ts = post_card(wbot, fake_slack, case)
    choose(wbot, MoreAction.NOISE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    wait_card(fake_slack, channel, ts, "Marked as noise", clock=clock)
    submit(wbot, ModalCallback.CONVERSION, {"before": selected("negative"),
                                            "after": selected("positive")},
           user="U0ALICE", mention_id=mention_id, channel=channel)
    eventually(lambda: any("noise" in t for t in ephemerals(fake_slack)))
    assert rows(wbot, Conversion) == []
