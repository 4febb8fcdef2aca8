"""Settings and the care config fail with a clear message, never a secret or traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_care_config, load_settings
from bot.errors import ConfigError


def test_default_config_routes_every_category(care_config) -> None:
    from bot.domain import Category

    assert set(care_config.routing) == set(Category)
    assert care_config.channel_for(Category.CASE) == "C0SUPPORT"
    assert care_config.channel_for(Category.NOISE) is None


def test_missing_settings_are_named(monkeypatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "INGEST_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    with pytest.raises(ConfigError) as err:
        settings.require("slack_bot_token", "slack_signing_secret", "ingest_token")
    assert "SLACK_BOT_TOKEN" in str(err.value) and "INGEST_TOKEN" in str(err.value)


def test_malformed_settings_name_the_setting_not_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None, database_url="mysql://user:hunter2@db/x")
    assert "DATABASE_URL" in str(err.value)
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None, slack_bot_token="changeme")
    assert "SLACK_BOT_TOKEN" in str(err.value) and "placeholder" in str(err.value)


def test_postgres_urls_use_psycopg3() -> None:
    settings = load_settings(_env_file=None, database_url="postgres://u:p@127.0.0.1/carebot")
    assert settings.database_url == "postgresql+psycopg://u:p@127.0.0.1/carebot"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("departments: [", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("departments: {}\nrouting: {case: support}\ntriage_channel: C1", "routing.case"),
        ("departments: {}\nrouting: {}\ntriage_channel: C1\ntimezone: Mars/Base", "timezone"),
        ("departments: {}\nrouting: {}\ntriage_channel: C1\nsurprise: 1", "surprise"),
        ("departments: {}\nrouting: {banana: null}\ntriage_channel: C1", "routing.banana"),
    ],
)
def test_bad_care_config_is_explained(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "care.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_care_config(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_cli_reports_config_errors_without_a_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SLACK_BOT_TOKEN": "xoxb-secret-123",
           "SLACK_SIGNING_SECRET": "s" * 32}
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "run"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "INGEST_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "xoxb-secret-123" not in proc.stderr + proc.stdout


def test_tier_and_list_names_match_whatever_their_case_in_the_config(care_config) -> None:
    """Imported tiers and /care watch lists are stored in lower case; a config naming
    `Platinum` or `MVP` used to match nothing (no entitlement, no priority)."""
    from bot import priority as prio
    from bot.config import CareConfig

    data = care_config.model_dump(mode="json")
    attention = data["attention"]
    attention["priority"]["tiers"] = {"Platinum": 1.0, "GOLD": 0.7}
    attention["sla"].update(entitled_tiers=["Platinum"], tiers={"Platinum": {"case": 2}})
    attention["watch"]["lists"] = {"MVP": 1.0}
    config = CareConfig.model_validate(data).attention
    assert prio.is_entitled(tier="platinum", watch_lists=(), config=config)
    assert not prio.is_entitled(tier="gold", watch_lists=(), config=config)
    assert config.priority.tiers == {"platinum": 1.0, "gold": 0.7}
    assert "platinum" in config.sla.tiers and config.watch.lists == {"mvp": 1.0}
    attention["watch"]["lists"] = {"MVP": 1.0, "mvp": 0.5}
    with pytest.raises(ValueError, match="differ by more than upper/lower case"):
        CareConfig.model_validate(data)
