"""/care stats, digest and export end to end: signed slash commands to the bot's
HTTP endpoint, answers and file uploads recorded by the fake Slack."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date

import pytest

from bot.app import build_runtime
from bot.charts import PNG_MAGIC
from bot.classify.factory import rules_classifier
from bot.config import CareConfig, load_settings
from storage.db import session_scope
from storage.tables import Mention
from tests.harness.bot_server import (
    BOT_TOKEN,
    INGEST_TOKEN,
    SIGNING_SECRET,
    BotServer,
    eventually,
    start_bot_server,
)
from tests.harness.fake_slack import Call, FakeSlack
from tests.harness.signing import command_body
from tests.stats.seed import NOW, Seeded, seed


@pytest.fixture
def stats_bot(fake_slack: FakeSlack, database_url: str, care_config: CareConfig
              ) -> Iterator[tuple[BotServer, Seeded]]:
    data = care_config.model_dump(mode="json")
    data["stats"] = {
        "managers": ["U0MANAGER"], "manager_groups": ["S0LEADS"],
        "digests": {"daily_enabled": False, "weekly_enabled": False,
                    "daily_channel": "C0LEADS", "weekly_channel": "C0LEADERSHIP"},
        "spikes": {"enabled": False},
    }
    config = CareConfig.model_validate(data)
    settings = load_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                             ingest_token=INGEST_TOKEN, slack_api_url=fake_slack.url,
                             database_url=database_url, _env_file=None)
    runtime = build_runtime(settings, config=config, classifier=rules_classifier(config),
                            clock=lambda: NOW, poll=0.2)
    seeded = seed(runtime.engine)
    server = start_bot_server(runtime)
    yield server, seeded
    server.stop()
    runtime.engine.dispose()


def care(bot: BotServer, fake_slack: FakeSlack, text: str, *, user: str = "U0MANAGER",
         hook: str = "abc") -> str:
    """Send ``/care <text>``; returns the response_url method the bot answers on."""
    method = f"response/T0FAKE/1/{hook}"
    response = bot.post_slack(command_body("/care", text, user=user,
                                           response_url=f"{fake_slack.url}{method}"))
    assert response.status_code == 200
    return method


def section_text(call: Call) -> str:
    return "\n".join(b["text"]["text"] for b in call.params["blocks"] if b["type"] == "section")


def in_last_week(seeded: Seeded) -> list[Mention]:
    # 7d at NOW = the local days 2026-11-17..2026-11-23 (Dublin = UTC in November).
    return [m for m in seeded.mentions if m.ingested_at.date() >= date(2026, 11, 17)]


def test_manager_gets_numbers_and_png_charts_privately(
        stats_bot: tuple[BotServer, Seeded], fake_slack: FakeSlack) -> None:
    bot, seeded = stats_bot
    hook = care(bot, fake_slack, "stats 7d")
    replies = fake_slack.wait_for(hook)
    assert all(r.params["response_type"] == "ephemeral" for r in replies)
    assert len(replies[0].params["blocks"]) <= 50
    text = section_text(replies[0])
    assert f"*Volume* {len(in_last_week(seeded))} mentions" in text
    assert "`#brandfail` " + str(sum("#brandfail" in m.text for m in in_last_week(seeded))) \
        in text

    [complete] = fake_slack.wait_for("files.completeUploadExternal")
    assert complete.params["channel_id"] == "D0MANAGER"  # the manager's DM, not the channel
    uploads = fake_slack.uploaded("D0MANAGER")
    assert [u.filename for u in uploads] == ["volume.png", "heatmap.png", "response.png"]
    for upload in uploads:
        assert upload.data is not None and upload.data.startswith(PNG_MAGIC)
        assert len(upload.data) == upload.length
    assert len(fake_slack.ok_calls("files.getUploadURLExternal")) == 3
    assert len(fake_slack.ok_calls("upload")) == 3


def test_group_member_can_post_stats_publicly(stats_bot: tuple[BotServer, Seeded],
                                              fake_slack: FakeSlack) -> None:
    bot, seeded = stats_bot
    fake_slack.usergroups["S0LEADS"] = ["U0LEAD"]
    hook = care(bot, fake_slack, "stats support 7d public", user="U0LEAD")
    [reply] = fake_slack.wait_for(hook)
    assert reply.params["response_type"] == "in_channel"
    support = [m for m in in_last_week(seeded) if m.department == "support"]
    assert f"*Volume* {len(support)} mentions" in section_text(reply)
    eventually(lambda: len(fake_slack.uploaded("C0SUPPORT")) == 3)


def test_non_managers_and_bad_ranges_are_refused(stats_bot: tuple[BotServer, Seeded],
                                                 fake_slack: FakeSlack) -> None:
    bot, _ = stats_bot
    care(bot, fake_slack, "stats 7d", user="U0AGENT")
    [refusal] = fake_slack.wait_for("chat.postEphemeral")
    assert refusal.params["user"] == "U0AGENT" and "for managers" in refusal.params["text"]
    # ...naming who is, so the agent knows whom to ask.
    assert "Managers: <@U0MANAGER>, <!subteam^S0LEADS>." in refusal.params["text"]
    care(bot, fake_slack, "export lastyear")
    [_, bad] = fake_slack.wait_for("chat.postEphemeral", 2)
    assert "not a range" in bad.params["text"]
    assert fake_slack.ok_calls("files.getUploadURLExternal") == []


def test_export_uploads_a_csv_to_the_requester(stats_bot: tuple[BotServer, Seeded],
                                               fake_slack: FakeSlack) -> None:
    bot, seeded = stats_bot
    with session_scope(bot.runtime.engine) as session:
        session.add(Mention(source="forum", external_id="evil", author="x",
                            text="=HYPERLINK(\"http://evil\")", ingested_at=NOW.replace(hour=9)))
    hook = care(bot, fake_slack, "export 7d")
    [reply] = fake_slack.wait_for(hook)
    week = in_last_week(seeded)
    assert f"Exported {len(week) + 1} mentions" in reply.params["text"]
    [upload] = fake_slack.uploaded("D0MANAGER")
    assert upload.filename == "carebot-mentions-2026-11-17-to-2026-11-23.csv"
    # A byte-order mark first, so Excel reads accented and Cyrillic text as UTF-8.
    assert upload.data.startswith(b"\xef\xbb\xbfid,")
    rows = list(csv.DictReader(io.StringIO(upload.data.decode("utf-8-sig"))))
    assert [int(r["id"]) for r in rows[:-1]] == [m.id for m in week]
    assert rows[0]["claimed_by"] == (seeded.engagements[week[0].id].claimed_by or "")
    assert rows[-1]["text"] == "'=HYPERLINK(\"http://evil\")"  # never a live formula


def test_digest_preview_and_send(stats_bot: tuple[BotServer, Seeded],
                                 fake_slack: FakeSlack) -> None:
    bot, seeded = stats_bot
    hook = care(bot, fake_slack, "digest preview weekly")
    [preview] = fake_slack.wait_for(hook)
    assert preview.params["blocks"][0]["text"]["text"] == \
        "One interesting thing we learned from customers"
    starred = {m.text for m in seeded.mentions if m.id in seeded.stars}
    quote = section_text(preview).split("\n")[0]
    assert quote.startswith("> ") and quote[2:] in {t.replace("&", "&amp;") for t in starred}

    care(bot, fake_slack, "digest send daily", hook="send")
    [post] = fake_slack.wait_for("chat.postMessage",
                                 where=lambda c: c.params.get("channel") == "C0LEADS")
    assert post.params["blocks"][0]["text"]["text"] == \
        "Daily care digest — All departments — 2026-11-22"
    yesterday = sum(1 for m in seeded.mentions if m.ingested_at.date() == date(2026, 11, 22))
    assert section_text(post).startswith(f"*{yesterday}* mentions yesterday")
    [sent] = fake_slack.wait_for("response/T0FAKE/1/send")
    assert "Sent the daily digest to <#C0LEADS> (1 message)" in sent.params["text"]
