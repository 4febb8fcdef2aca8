"""Social 911: permission, modal, escalation post, the CRM webhook through a receiver
that fails three times, the case id on the card, and the after-action review."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from bot.cli import main as cli
from bot.config import CareConfig
from handlers.ids import CardAction, ModalCallback, ModalRef
from storage.workflow_tables import AfterActionReview, Dispatch, Escalation
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import block_action, interaction_body
from tests.workflow.conftest import BotFactory, Clock
from tests.workflow.helpers import (
    buttons,
    click,
    engagement,
    post_card,
    selected,
    submit,
    text,
    wait_card,
)

pytestmark = pytest.mark.usefixtures("paced")  # no exact durations asserted here


SECRET_ENV = "CAREBOT_TEST_CRM_SECRET"
SECRET = "crm-signing-secret-for-tests"
RANT = {"source": "twitter", "id": "7001", "author": "angry_al", "author_reach": 250000,
        "text": "worst support ever, never again", "url": "https://twitter.com/angry_al/7001"}


@dataclass
class Receiver:
    """A CRM webhook receiver on 127.0.0.1 that answers from a script of statuses."""

    script: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} webhook calls, got {len(self.requests)}")
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(script=[500, 502, 500, 201])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with rec.arrived:
                n = len(rec.requests)
                rec.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                rec.arrived.notify_all()
            status = rec.script[min(n, len(rec.script) - 1)]
            answer = json.dumps({"case_id": "CASE-42"} if status < 300 else
                                {"error": "crm down"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/cases"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def crm_bot(make_bot: BotFactory, workflow_config: CareConfig, receiver: Receiver,
            fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> BotServer:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    fake_slack.usergroups["S0ESCALATORS"] = ["U0ESCALATOR"]
    data = workflow_config.model_dump(mode="json")
    data["workflow"]["escalation"].update(crm_webhook_url=receiver.url, crm_secret_env=SECRET_ENV)
    return make_bot(CareConfig.model_validate(data))


def dispatch_row(bot: BotServer) -> Dispatch:
    with Session(bot.runtime.engine) as session:
        row = session.exec(select(Dispatch)).one()
        return row


def escalate(bot: BotServer, fake: FakeSlack, mention_id: int, channel: str, ts: str) -> None:
    click(bot, CardAction.ESCALATE, mention_id, user="U0ESCALATOR", channel=channel, ts=ts)
    [opened] = fake.wait_for("views.open")
    assert opened.params["view"]["callback_id"] == ModalCallback.ESCALATE
    response = submit(bot, ModalCallback.ESCALATE,
                      {"severity": selected("sev1"), "reason": text("Influencer, going viral"),
                       "context": text("Enterprise customer since 2019")},
                      user="U0ESCALATOR", mention_id=mention_id, channel=channel)
    assert response.status_code == 200 and response.text == ""


def test_escalation_survives_a_crm_that_fails_three_times(
        crm_bot: BotServer, fake_slack: FakeSlack, receiver: Receiver, clock: Clock) -> None:
    mention_id, channel, ts = post_card(crm_bot, fake_slack, RANT)

    # Not in the escalation group: a clear, private refusal and no modal.
    click(crm_bot, CardAction.ESCALATE, mention_id, user="U0BOB", channel=channel, ts=ts)
    [refusal] = fake_slack.wait_for("chat.postEphemeral")
    assert refusal.params["user"] == "U0BOB"
    assert "Only the escalation team can escalate" in refusal.params["text"]
    assert fake_slack.all_calls("views.open") == []

    escalate(crm_bot, fake_slack, mention_id, channel, ts)
    [post] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"]
                                 == "C0SOCIAL911")
    assert "<!subteam^S0SOCIAL911>" in post.params["text"]
    assert "Influencer, going viral" in json.dumps(post.params["blocks"])
    blocks = wait_card(fake_slack, channel, ts, "Escalated (SEV1) by <@U0ESCALATOR>")
    assert "CRM case being opened" in json.dumps(blocks)
    assert CardAction.ESCALATE not in buttons(blocks)

    # Three failures, each retried after its backoff; the fourth call opens the case.
    for attempt in (1, 2, 3):
        receiver.wait(attempt)
        eventually(lambda a=attempt: (row := dispatch_row(crm_bot)).attempts == a
                   and row.lease_owner is None and row.status == "pending")
        assert dispatch_row(crm_bot).last_error == f"HTTP {receiver.script[attempt - 1]}"
        clock.advance(minutes=10)
    requests = receiver.wait(4)
    wait_card(fake_slack, channel, ts, "CRM case `CASE-42`")

    assert len(requests) == 4
    bodies = {body for _, body in requests}
    assert len(bodies) == 1  # the same request each time
    for headers, body in requests:
        assert headers["idempotency-key"] == "carebot-escalation-1"
        expected = hmac.new(SECRET.encode(), headers["x-carebot-timestamp"].encode() + b"."
                            + body, hashlib.sha256).hexdigest()
        assert headers["x-carebot-signature"] == f"sha256={expected}"
        assert SECRET not in body.decode()
    payload = json.loads(requests[0][1])
    assert payload["severity"] == "sev1" and payload["reason"] == "Influencer, going viral"
    assert payload["customer_context"] == "Enterprise customer since 2019"
    assert payload["mention"]["text"] == RANT["text"]
    assert payload["slack"] == {"channel": channel, "ts": ts}
    row = dispatch_row(crm_bot)
    assert (row.status, row.attempts) == ("sent", 4)
    with Session(crm_bot.runtime.engine) as session:
        esc = session.exec(select(Escalation)).one()
    assert (esc.case_id, esc.crm_status, esc.escalated_by) == ("CASE-42", "created",
                                                               "U0ESCALATOR")


def test_resolving_an_escalation_asks_the_escalator_for_a_review(
        wbot: BotServer, fake_slack: FakeSlack, clock: Clock, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mention_id, channel, ts = post_card(wbot, fake_slack, RANT)
    escalate(wbot, fake_slack, mention_id, channel, ts)
    wait_card(fake_slack, channel, ts, "Escalated (SEV1)")

    # A second escalation of the same mention is refused.
    submit(wbot, ModalCallback.ESCALATE, {"severity": selected("sev2"), "reason": text("again")},
           user="U0ESCALATOR", mention_id=mention_id, channel=channel)
    [refusal] = fake_slack.wait_for("chat.postEphemeral")
    assert "Already escalated by <@U0ESCALATOR>" in refusal.params["text"]
    assert refusal.params["channel"] == channel

    clock.advance(minutes=30)
    click(wbot, CardAction.RESOLVE, mention_id, user="U0ALICE", channel=channel, ts=ts)
    [dm] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"]
                               == "U0ESCALATOR")
    [button] = [e for b in dm.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == CardAction.REVIEW

    payload = block_action(CardAction.REVIEW, button["value"], user="U0ESCALATOR",
                           channel="D0ESCALATOR", message_ts=fake_slack.ts_of(dm))
    wbot.post_slack(interaction_body(payload))
    opened = fake_slack.wait_for("views.open", 2)[-1]
    assert opened.params["view"]["callback_id"] == ModalCallback.REVIEW
    ref = ModalRef.parse(opened.params["view"]["private_metadata"])
    assert ref.m == mention_id and ref.e is not None

    # Required fields are enforced in the modal; nothing is stored.
    bad = submit(wbot, ModalCallback.REVIEW, {"outcome": text(" ")}, user="U0ESCALATOR",
                 mention_id=mention_id, escalation=ref.e)
    assert bad.json()["response_action"] == "errors"
    assert set(bad.json()["errors"]) == {"outcome", "without", "appropriate"}

    answer = {"outcome": text("Customer calmed down, case solved in 2h"),
              "without": text("Thread would have trended"), "better": text("Faster DM"),
              "appropriate": {"value": {"type": "radio_buttons",
                                        "selected_option": {"value": "yes"}}}}
    # Someone who neither escalated nor resolved may not write it.
    submit(wbot, ModalCallback.REVIEW, answer, user="U0MALLORY", mention_id=mention_id,
           escalation=ref.e)
    eventually(lambda: any("Only the escalator or the resolver" in c.params.get("text", "")
                           for c in fake_slack.all_calls("chat.postMessage")
                           + fake_slack.all_calls("chat.postEphemeral")))
    ok = submit(wbot, ModalCallback.REVIEW, answer, user="U0ESCALATOR", mention_id=mention_id,
                escalation=ref.e)
    assert ok.status_code == 200 and ok.text == ""

    def stored() -> AfterActionReview | None:
        with Session(wbot.runtime.engine) as session:
            return session.exec(select(AfterActionReview)).first()

    review = eventually(stored)
    assert (review.reviewer, review.appropriate) == ("U0ESCALATOR", True)
    assert engagement(wbot, mention_id).resolved_by == "U0ALICE"

    # Escalating the resolved mention again: reopening would not undo the escalation,
    # so the refusal says it was escalated instead of advising a reopen.
    submit(wbot, ModalCallback.ESCALATE, {"severity": selected("sev2"), "reason": text("again")},
           user="U0ESCALATOR", mention_id=mention_id, channel=channel)
    eventually(lambda: sum("Already escalated by <@U0ESCALATOR>" in c.params.get("text", "")
                           for c in fake_slack.all_calls("chat.postEphemeral")) == 2)
    assert not any("reopen" in c.params.get("text", "")
                   for c in fake_slack.all_calls("chat.postEphemeral"))

    monkeypatch.setenv("DATABASE_URL", str(wbot.runtime.engine.url.render_as_string(
        hide_password=False)))
    out = tmp_path / "reviews.csv"
    result = CliRunner().invoke(cli, ["reviews", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 1
    assert rows[0]["outcome"] == "Customer calmed down, case solved in 2h"
    assert rows[0]["severity"] == "sev1" and rows[0]["appropriate"] == "yes"
    assert rows[0]["escalated_by"] == "U0ESCALATOR" and rows[0]["reviewer"] == "U0ESCALATOR"
