"""App Home, post-engagement monitoring, priority alerts and the customer import."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from slack_sdk.models.views import View
from sqlmodel import Session, select

from bot.cli import main
from bot.services.attention import HomeItem, HomeView
from handlers.home import render_home
from handlers.ids import CardAction, CardRef
from storage.tables import SlackPost
from tests.attention.conftest import ADMIN, ALERTS, Clock
from tests.attention.test_watch_and_escalation import care
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import event_body


def card_for(fake_slack: FakeSlack, external_text: str, bot: BotServer | None = None) -> str:
    """The ts of the card whose text contains ``external_text``, once carebot recorded it.

    Clicking before the outbox has stored the ts would race the delivery (the
    claim would find no posted card to update), so wait for the stored ts.
    """
    [card] = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("blocks")
                                 and external_text in c.params["text"])
    ts = fake_slack.ts_of(card)
    if bot is not None:
        def stored() -> bool:
            with Session(bot.runtime.engine) as session:
                return session.exec(select(SlackPost).where(SlackPost.ts == ts)).first() is not None
        eventually(stored)
    return ts


def open_home(bot: BotServer, fake_slack: FakeSlack, user: str, n: int) -> dict:
    body = event_body({"type": "app_home_opened", "user": user, "channel": "D0HOME",
                       "tab": "home"}, event_id=f"EvHome{n}")
    assert bot.post_slack(body, content_type="application/json").status_code == 200
    publish = fake_slack.wait_for("views.publish", n)[n - 1]
    assert publish.params["user_id"] == user
    view = publish.params["view"]
    return json.loads(view) if isinstance(view, str) else view


def test_app_home_shows_my_mentions_and_the_queue_by_priority(
        make_bot, fake_slack: FakeSlack) -> None:
    bot = make_bot()
    care(bot, fake_slack, "watch add mvp @vip_val", user=ADMIN)
    bot.ingest([
        {"source": "twitter", "id": "h1", "author": "plain_pat",
         "text": "how do i export my data"},
        {"source": "twitter", "id": "h2", "author": "vip_val",
         "text": "app crash on start, not working"},
        {"source": "twitter", "id": "h3", "author": "dana_k",
         "text": "my laptop won't boot since the update, help"},
    ])
    fake_slack.wait_for("chat.postMessage", 3, where=lambda c: c.params.get("blocks"))
    mine = bot.ingest({"source": "twitter", "id": "h4", "author": "mine_mo",
                       "text": "error when I log in, help"}).json()["ids"][0]
    ts = card_for(fake_slack, "mine_mo", bot)
    bot.click(CardAction.CLAIM, CardRef(m=mine).dump(), user="U0ALICE", channel="C0SUPPORT",
              message_ts=ts)
    fake_slack.wait_for("chat.update")

    view = open_home(bot, fake_slack, "U0ALICE", 1)
    assert view["type"] == "home"
    View(**view).validate_json()  # Slack's limits: <= 100 blocks, field lengths
    ids = [b.get("block_id") for b in view["blocks"]]
    assert f"mine-{mine}" in ids
    queue = [b for b in ids if b and b.startswith("queue-")]
    assert len(queue) == 3 and f"queue-{mine}" not in queue
    headers = {b["block_id"]: b["text"]["text"] for b in view["blocks"]
               if b["type"] == "header"}
    assert headers["mine"] == "My claimed mentions (1)"
    assert headers["queue"] == "Unclaimed, highest priority first (3)"
    texts = {b["block_id"]: b["text"]["text"] for b in view["blocks"]
             if b.get("block_id", "").startswith("queue-")}
    assert "vip_val" in texts[queue[0]]  # the watched author leads the queue
    priorities = [int(texts[q].split("*")[1]) for q in queue]
    assert priorities == sorted(priorities, reverse=True)
    summary = next(b for b in view["blocks"] if b.get("block_id") == "summary")
    assert "4 on time" in summary["text"]["text"]


def test_home_view_of_a_full_queue_stays_within_block_kit_limits() -> None:
    now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    item = HomeItem(mention_id=1, category="case", author="x" * 255, text="<&>" * 2000,
                    priority=99, sla_status="warning", due_at=now + timedelta(minutes=1),
                    channel="C0SUPPORT", watch_lists=("mvp", "influencer"), follow_up=True)
    view = HomeView(user="U0ALICE", claimed=[item] * 15, unclaimed=[item] * 15,
                    claimed_total=15, unclaimed_total=240,
                    sla={"ok": 1, "warning": 2, "breached": 3}, conversion_score=1.25,
                    conversions=4, generated_at=now)
    rendered = render_home(view).to_dict()
    assert len(rendered["blocks"]) <= 100
    assert all(len(b["text"]["text"]) <= 3000 for b in rendered["blocks"]
               if b["type"] == "section")
    # Written as /care conversions writes it (it read "1.2" here and "+1.25" there).
    assert "*+1.25* average over 4" in str(rendered["blocks"][1])
    # The headers count everything, not just the 15 shown.
    headers = {b["block_id"]: b["text"]["text"] for b in rendered["blocks"]
               if b["type"] == "header"}
    assert headers["mine"] == "My claimed mentions (15)"
    assert headers["queue"] == "Unclaimed, highest priority first (15 of 240)"


def test_follow_up_after_an_engagement_is_threaded_under_the_original_card(
        make_bot, clock: Clock, fake_slack: FakeSlack) -> None:
    bot = make_bot()
    first = bot.ingest({"source": "twitter", "id": "m1", "author": "dana_k",
                        "text": "my laptop won't boot since the update, help"}).json()["ids"][0]
    ts = card_for(fake_slack, "won't boot", bot)
    bot.click(CardAction.CLAIM, CardRef(m=first).dump(), user="U0ALICE", channel="C0SUPPORT",
              message_ts=ts)
    fake_slack.wait_for("chat.update")

    clock.set(clock() + timedelta(days=2))
    bot.ingest({"source": "twitter", "id": "m2", "author": "@Dana_K",
                "text": "thanks, it boots again!"})
    [follow] = fake_slack.wait_for("chat.postMessage",
                                   where=lambda c: c.params.get("thread_ts") == ts)
    assert "Follow-up" in follow.params["text"] and "it boots again" in follow.params["text"]
    assert "conversion" in follow.params["text"]
    new_card = fake_slack.wait_for("chat.postMessage", where=lambda c: c.params.get("blocks")
                                   and "boots again" in c.params["text"])[0]
    assert "follow-up after an engagement" in json.dumps(new_card.params["blocks"])

    # After the monitoring window, a new mention is not threaded.
    clock.set(clock() + timedelta(days=8))
    bot.ingest({"source": "twitter", "id": "m3", "author": "dana_k",
                "text": "how do i change my password"})
    card_for(fake_slack, "change my password")
    threaded = [c for c in fake_slack.ok_calls("chat.postMessage")
                if c.params.get("thread_ts") == ts]
    assert len(threaded) == 1


def test_imported_platinum_customer_raises_priority_and_is_announced(
        make_bot, fake_slack: FakeSlack, database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("customer_id,name,tier,handles\n"
                        "C-1,Acme,platinum,twitter:@acme_anna acme-anna\n"
                        ",Nameless,gold,someone\n"
                        "C-2,Bad Tier,gold plus,x\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["customers", "import", str(csv_file)],
                                env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert "imported 1 new customer(s)" in result.output
    assert "line 3: customer_id is empty" in result.output
    assert "line 4: tier" in result.output

    bot = make_bot()
    care(bot, fake_slack, "watch add big_customer @acme_anna", user=ADMIN)
    bot.ingest([{"source": "twitter", "id": "p1", "author": "acme_anna",
                 "text": "everything is broken, not working since the update"},
                {"source": "twitter", "id": "p2", "author": "random_rob",
                 "text": "everything is broken, not working since the update"}])
    [alert] = fake_slack.wait_for("chat.postMessage",
                                  where=lambda c: c.params["channel"] == ALERTS)
    assert "High-priority negative mention" in alert.params["text"]
    assert "acme_anna" in alert.params["text"] and "platinum customer" in alert.params["text"]
    cards = fake_slack.wait_for("chat.postMessage", 2, where=lambda c: c.params.get("blocks")
                                and "not working" in c.params["text"])
    by_author = {("acme" if "acme_anna" in c.params["text"] else "rob"): json.dumps(
        c.params["blocks"]) for c in cards}
    assert ":gem: platinum customer" in by_author["acme"]
    assert ":star: big_customer" in by_author["acme"]
    assert "platinum" not in by_author["rob"]
    eventually(lambda: len(fake_slack.ok_calls("chat.postMessage")) >= 3)
    assert len([c for c in fake_slack.ok_calls("chat.postMessage")
                if c.params["channel"] == ALERTS]) == 1
