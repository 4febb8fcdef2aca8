"""app-manifest.yml is valid for Slack and matches what the app registers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from handlers.ids import SLASH_COMMANDS

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "slack" / "manifest.schema.2.0.0.json"


def manifest() -> dict:
    return yaml.safe_load((ROOT / "app-manifest.yml").read_text())


def test_manifest_validates_against_slack_schema() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"Slack's manifest schema is not at {SCHEMA} (shared/ not beside the repo)")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(manifest(), schema)


def test_schema_rejects_a_broken_manifest() -> None:
    """Guards the test above: the validation really looks at our fields."""
    if not SCHEMA.exists():
        pytest.skip(f"Slack's manifest schema is not at {SCHEMA}")
    broken = manifest()
    broken["features"]["slash_commands"][0]["command"] = "care"  # must start with "/"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()))


def test_commands_in_manifest_are_exactly_those_registered(bot) -> None:
    """Every manifest command is answered by the app; the app answers no other."""
    from tests.harness.signing import command_body

    in_manifest = {c["command"] for c in manifest()["features"]["slash_commands"]}
    assert in_manifest == set(SLASH_COMMANDS)
    for command in in_manifest:
        response = bot.post_slack(command_body(command, "help"))
        assert response.status_code == 200, command
        assert "/care" in response.text
    assert bot.post_slack(command_body("/not-carebot", "help")).status_code == 404


def test_manifest_urls_point_at_the_one_events_endpoint() -> None:
    m = manifest()
    urls = {m["settings"]["event_subscriptions"]["request_url"],
            m["settings"]["interactivity"]["request_url"],
            *(c["url"] for c in m["features"]["slash_commands"])}
    assert {u.rsplit("/", 2)[-2] + "/" + u.rsplit("/", 1)[-1] for u in urls} == {"slack/events"}
