"""The first hour of a new team: the README and DEPLOY.md followed literally, and the
mistakes a new operator makes answered with one clear line naming the fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from pydantic import BaseModel

from bot.cli import main
from bot.config import CareConfig, Settings, load_care_config, load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DOCS = {name: (ROOT / name).read_text("utf-8") for name in ("README.md", "docs/DEPLOY.md")}
DEFAULT_CONFIG = ROOT / "bot" / "data" / "default_config.yml"
REAL = {"slack_bot_token": "xoxb-1234-5678-abcdefGHIJ", "slack_app_token": "xapp-1-A0-123-beef",
        "slack_signing_secret": "8f14e45fceea167a5a36dedd4bea2543",
        "ingest_token": "ingest-token-0123456789"}


def run_carebot(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", "from bot.cli import entrypoint; entrypoint()",
                           *args], capture_output=True, text=True, env={**base, **env},
                          cwd=cwd, timeout=60)


def config_error(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "care.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    with pytest.raises(ConfigError) as err:
        load_care_config(path)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def default_config() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG.read_text("utf-8"))  # type: ignore[no-any-return]


# -- settings: the placeholders the docs themselves show --------------------------------


@pytest.mark.parametrize(("name", "value"), [
    ("slack_bot_token", "xoxb-…"),                  # README's table and DEPLOY's .env, as is
    ("slack_signing_secret", "…"),                  # DEPLOY's .env, as is
    ("slack_bot_token", "xoxb-your-token-here"),
    ("slack_signing_secret", "your-signing-secret"),
    ("slack_app_token", "xapp-..."),
    ("ingest_token", "<your ingest token>"),
    ("ingest_token", "$(openssl rand -hex 32)"),    # DEPLOY: "paste the value"; a .env is no shell
])
def test_placeholder_secrets_from_the_docs_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None, **{**REAL, name: value})
    message = str(err.value)
    assert name.upper() in message and "placeholder" in message
    assert "(ROOT)" not in message and "Value error" not in message, message
    assert value not in message


def test_real_looking_secrets_are_accepted() -> None:
    settings = load_settings(_env_file=None, **REAL)
    assert settings.slack_bot_token is not None


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("slack_bot_token", "xapp-1-A0-123-beef", "xoxb-"),   # the app-level token, pasted twice
    ("slack_bot_token", "xoxp-1234-5678-user", "xoxb-"),  # a user token
    ("slack_app_token", "xoxb-1234-5678-abcdefGHIJ", "xapp-"),
])
def test_a_slack_token_of_the_wrong_kind_is_named(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None, **{**REAL, name: value})
    message = str(err.value)
    assert name.upper() in message and expected in message, message
    assert value not in message


def test_cli_names_a_placeholder_in_one_clean_line(tmp_path: Path) -> None:
    proc = run_carebot("run", env={"SLACK_BOT_TOKEN": "xoxb-your-token",
                                   "SLACK_SIGNING_SECRET": REAL["slack_signing_secret"],
                                   "INGEST_TOKEN": REAL["ingest_token"]}, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "carebot: SLACK_BOT_TOKEN is a placeholder; set the real value"], proc.stderr


# -- the care configuration -------------------------------------------------------------


def test_a_misspelt_key_is_named_with_the_key_meant(tmp_path: Path) -> None:
    data = default_config()
    data["classification"]["treshold"] = data["classification"].pop("threshold")
    message = config_error(tmp_path, data)
    assert "classification.treshold" in message and "`threshold`" in message, message
    data = default_config()
    data["triage_chanel"] = data.pop("triage_channel")
    message = config_error(tmp_path, data)
    assert "triage_chanel" in message and "`triage_channel`" in message, message


@pytest.mark.parametrize("path", [
    ("departments", "support", "channel"), ("triage_channel",),
    ("stats", "digests", "daily_channel"), ("stats", "spikes", "channel"),
    ("workflow", "escalation", "channel"), ("attention", "priority", "alert_channel"),
])
def test_a_channel_name_instead_of_its_id_is_refused(tmp_path: Path, path: tuple[str, ...]
                                                    ) -> None:
    data = default_config()
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = "#support"
    message = config_error(tmp_path, data)
    assert ".".join(path) in message and "channel id" in message and "C0123" in message, message


def test_channel_ids_of_every_kind_are_accepted(tmp_path: Path) -> None:
    data = default_config()
    data["triage_channel"] = "G01ABCDEF"  # a private channel created before 2021
    data["departments"]["support"]["channel"] = "C07Q2LX4B9F"
    path = tmp_path / "care.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    assert load_care_config(path).triage_channel == "G01ABCDEF"


def test_bad_yaml_is_one_line_naming_where(tmp_path: Path) -> None:
    path = tmp_path / "care.yml"
    path.write_text("departments:\n  support: {channel: C0SUPPORT\n")
    with pytest.raises(ConfigError) as err:
        load_care_config(path)
    message = str(err.value)
    assert "\n" not in message and "line " in message and str(path) in message, message


# -- the docs match the code ------------------------------------------------------------


def _settings_documented(text: str) -> set[str]:
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def test_every_setting_is_documented_and_every_documented_one_exists() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    compose_only = {"POSTGRES_PASSWORD"}
    for name, text in DOCS.items():
        unknown = _settings_documented(text) - fields - compose_only
        assert not unknown, f"{name} documents settings carebot does not read: {unknown}"
    missing = fields - _settings_documented(DOCS["docs/DEPLOY.md"])
    assert not missing, f"docs/DEPLOY.md does not document {missing}"


def _command_lines(text: str) -> list[list[str]]:
    spans = re.findall(r"`(carebot [^`]+)`", text)
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    spans += [line.split("#")[0].strip() for block in blocks for line in block.splitlines()
              if line.strip().startswith("carebot ")]
    return [span.split() for span in spans]


def test_every_documented_carebot_command_and_option_exists() -> None:
    checked = 0
    for name, text in DOCS.items():
        for words in _command_lines(text):
            command: click.Command = main
            for word in words[1:]:
                if word.startswith("-"):
                    option = word.split("=")[0]
                    known = {o for p in command.params for o in getattr(p, "opts", [])}
                    assert option in known, f"{name}: `{' '.join(words)}`: no {option}"
                elif isinstance(command, click.Group):
                    sub = command.get_command(click.Context(command), word)
                    if sub is None:
                        assert word.isupper() or "/" in word or "." in word or "[" in word, (
                            f"{name}: `{' '.join(words)}`: no command {word}")
                        continue
                    command = sub
            checked += 1
    assert checked >= 10


def _config_keys(text: str) -> set[str]:
    top = set(CareConfig.model_fields)
    return {key for key in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", text)
            if key.split(".")[0] in top}


def test_every_documented_config_key_exists() -> None:
    for name, text in DOCS.items():
        for key in _config_keys(text):
            model: type[BaseModel] = CareConfig
            for part in key.split("."):
                assert part in model.model_fields, f"{name}: `{key}` is not a config key"
                annotation = model.model_fields[part].annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    model = annotation


# -- app-manifest.yml -------------------------------------------------------------------

#: Why the app holds each scope: the Web API methods (``client.<method>`` in handlers/)
#: or event subscriptions that need it. A scope nothing needs is one Slack asks every
#: installing admin to approve for nothing.
SCOPE_USES = {
    "app_mentions:read": {"event:app_mention"},
    "channels:history": {"event:message.channels", "conversations_history"},
    "groups:history": {"event:message.groups", "conversations_history"},
    "im:history": {"conversations_history"},
    "chat:write": {"chat_postMessage", "chat_update", "chat_postEphemeral"},
    # Posting digests and alerts into a channel the bot was not invited to.
    "chat:write.public": {"chat_postMessage"},
    "commands": {"slash_commands"},
    "files:write": {"files_upload_v2"},
    "im:write": {"conversations_open"},
    "usergroups:read": {"usergroups_users_list"},
}


def test_every_scope_in_the_manifest_is_used() -> None:
    manifest = yaml.safe_load((ROOT / "app-manifest.yml").read_text())
    used = {f"event:{e}" for e in manifest["settings"]["event_subscriptions"]["bot_events"]}
    if manifest["features"].get("slash_commands"):
        used.add("slash_commands")
    for path in [*(ROOT / "handlers").glob("*.py"), ROOT / "bot" / "app.py"]:
        used |= set(re.findall(r"client\.([a-z]+_[A-Za-z_0-9]+)\b", path.read_text()))
    unused = {scope for scope in manifest["oauth_config"]["scopes"]["bot"]
              if not SCOPE_USES.get(scope, set()) & used}
    assert not unused, f"app-manifest.yml asks for scopes nothing uses: {sorted(unused)}"
