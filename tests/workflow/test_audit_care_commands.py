"""``/care`` as people type it, and App Home on a fresh install: signed requests to the
bot's HTTP endpoint, answers recorded by the fake Slack."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.config import CareConfig
from tests.harness.bot_server import BotServer, eventually
from tests.harness.fake_slack import Call, FakeSlack
from tests.harness.signing import command_body, event_body
from tests.workflow.conftest import BotFactory

ROOT = Path(__file__).resolve().parents[2]
LEAD = "U0LEAD"  # manager, watch-list admin and carebot admin
AGENT = "U0AGENT"  # none of those


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Parsing and answering /care is the same on any database: SQLite keeps these fast."""
    return f"sqlite:///{tmp_path / 'carebot.db'}"


@pytest.fixture
def cbot(make_bot: BotFactory, workflow_config: CareConfig) -> BotServer:
    data = workflow_config.model_dump(mode="json")
    data["stats"]["managers"] = [LEAD]
    data["stats"]["digests"].update(daily_enabled=False, weekly_enabled=False)
    data["stats"]["spikes"]["enabled"] = False
    data["attention"]["watch"]["admins"] = [LEAD]
    return make_bot(CareConfig.model_validate(data))


@dataclass
class Answer:
    via: str  # "ack" (the HTTP answer), "response_url" or "ephemeral" (chat.postEphemeral)
    text: str
    ephemeral: bool


def care(bot: BotServer, fake: FakeSlack, text: str, *, user: str = AGENT) -> list[Answer]:
    """Type ``/care <text>``; everything carebot answered, after checking the ack's speed."""
    before = len(fake.calls)
    hook = f"response/care{before}"
    started = time.monotonic()
    response = bot.post_slack(command_body("/care", text, user=user,
                                           response_url=f"{fake.url}{hook}"))
    assert response.status_code == 200
    assert time.monotonic() - started < 3, "Slack shows an error after 3 s without an ack"
    answers = []
    if response.text:
        body = (json.loads(response.text)
                if response.headers.get("content-type", "").startswith("application/json")
                else {"text": response.text})
        answers.append(Answer("ack", str(body.get("text", "")),
                              body.get("response_type", "ephemeral") == "ephemeral"))

    def later() -> list[Answer]:
        found = []
        for call in fake.calls[before:]:
            if call.method == hook:
                found.append(Answer("response_url", str(call.params.get("text", "")),
                                    call.params.get("response_type") == "ephemeral"))
            elif call.method == "chat.postEphemeral" and call.params.get("user") == user:
                found.append(Answer("ephemeral", str(call.params.get("text", "")), True))
        return found

    if not answers:
        eventually(later, timeout=5)
        time.sleep(0.1)  # a second message (charts, "…more") may follow the first
    return answers + later()


def all_text(answers: list[Answer]) -> str:
    return "\n".join(a.text for a in answers)


# -- how people type it ---------------------------------------------------------------


def test_help_however_it_is_typed_is_private_and_quick(cbot: BotServer,
                                                       fake_slack: FakeSlack) -> None:
    help_text = all_text(care(cbot, fake_slack, "help"))
    assert "`/care queue`" in help_text and "`/care stats" in help_text
    for typed in ("", "HELP", "  help  ", "Help"):
        answers = care(cbot, fake_slack, typed)
        assert all_text(answers) == help_text, typed
        assert all(a.ephemeral for a in answers)
    for typed in ("queue", "QUEUE", "  Queue  ", "\u00a0queue"):
        answers = care(cbot, fake_slack, typed)
        assert "*Unclaimed mentions*" in all_text(answers), typed
        assert all(a.ephemeral for a in answers)


def test_a_mistyped_subcommand_names_the_one_meant(cbot: BotServer,
                                                   fake_slack: FakeSlack) -> None:
    answers = care(cbot, fake_slack, "stat 7d")
    text = all_text(answers)
    assert "Unknown subcommand `stat`" in text
    assert "Did you mean `/care stats`?" in text, text
    assert all(a.ephemeral for a in answers)
    text = all_text(care(cbot, fake_slack, "`rm`"))
    assert "``" not in text.split("\n")[0], text  # the name quoted, not breaking the quote


def test_help_shows_the_arguments_each_subcommand_asks_for(cbot: BotServer,
                                                           fake_slack: FakeSlack) -> None:
    """What a subcommand answers to wrong arguments ("Usage: …") is what help showed."""
    help_text = all_text(care(cbot, fake_slack, "help"))
    for typed in ("watch bogus", "conversions bogus", "digest bogus"):
        usage = all_text(care(cbot, fake_slack, typed, user=LEAD))
        forms = re.findall(r"`(/care [^`]+)`", usage.split("Usage:", 1)[-1])
        assert forms, usage
        for form in forms:
            assert form in help_text, (form, help_text)


def test_every_usage_hint_in_the_manifest_works_as_typed(cbot: BotServer,
                                                         fake_slack: FakeSlack) -> None:
    """The hint Slack shows under ``/care`` is what people type first."""
    manifest = yaml.safe_load((ROOT / "app-manifest.yml").read_text())
    (command,) = manifest["features"]["slash_commands"]
    examples = {"<list>": "mvp", "<@handle>": "@dana_k"}
    for hint in command["usage_hint"].split("|"):
        typed = re.sub(r"\[([^\]|]+)\]", r"\1", hint.strip())
        for placeholder, example in examples.items():
            typed = typed.replace(placeholder, example)
        assert "<" not in typed, f"add an example for {typed!r} to this test"
        text = all_text(care(cbot, fake_slack, typed, user=LEAD))
        for refusal in ("Usage", "Unknown subcommand", ":warning:", ":x:"):
            assert refusal not in text, f"/care {typed}: {text}"


# -- refusals -------------------------------------------------------------------------


def test_a_refusal_is_private_and_names_who_may(cbot: BotServer,
                                                fake_slack: FakeSlack) -> None:
    for typed, refusal in [("reviews", "Only carebot admins"),
                           ("watch add mvp @dana_k", "Only watch-list admins"),
                           ("watch remove mvp @dana_k", "Only watch-list admins")]:
        answers = care(cbot, fake_slack, typed, user=AGENT)
        text = all_text(answers)
        assert refusal in text and f"<@{LEAD}>" in text, text
        assert all(a.ephemeral for a in answers)
        assert "Something went wrong" not in text


def test_watch_arguments_in_the_wrong_order_are_explained(cbot: BotServer,
                                                          fake_slack: FakeSlack) -> None:
    text = all_text(care(cbot, fake_slack, "watch add @dana_k mvp", user=LEAD))
    assert "is not a list name" in text and "<list> <@handle" in text, text
    assert "Something went wrong" not in text


# -- App Home on a fresh install --------------------------------------------------------


def test_app_home_on_an_empty_database(cbot: BotServer, fake_slack: FakeSlack) -> None:
    for user in (AGENT, LEAD):
        body = event_body({"type": "app_home_opened", "user": user, "channel": "D0HOME",
                           "tab": "home", "event_ts": "1.0"}, event_id=f"Ev{user}")
        assert cbot.post_slack(body, content_type="application/json").status_code == 200

        def published(user: str = user) -> list[Call]:
            return [c for c in fake_slack.ok_calls("views.publish")
                    if c.params["user_id"] == user]

        eventually(published)
    calls = fake_slack.ok_calls("views.publish")
    assert {c.params["user_id"] for c in calls} == {AGENT, LEAD}
    for call in calls:
        view = call.params["view"]
        view = json.loads(view) if isinstance(view, str) else view
        shown = json.dumps(view["blocks"], ensure_ascii=False)
        assert "My claimed mentions (0)" in shown and "Nothing claimed" in shown
        assert "highest priority first (0)" in shown and "The queue is empty" in shown
        assert "no conversions tagged yet" in shown
