"""Operator-facing failures: one clear line naming the setting, no traceback, no secret.

Each test runs the real ``carebot`` command (or the real loader) the way a new
operator would, against loopback only.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bot.config import load_care_config, load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-Secret-pw"
BOT_TOKEN = "xoxb-111-222-auditbottoken"


def carebot(*args: str, env: dict[str, str], cwd: Path,
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "CAREBOT_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", "from bot.cli import entrypoint; entrypoint()",
                           *args], capture_output=True, text=True, env={**base, **env},
                          cwd=cwd, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_clean_line(proc: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    for text in expected:
        assert text in proc.stderr, proc.stderr
    for secret in (PASSWORD, BOT_TOKEN):
        assert secret not in output


# -- settings -------------------------------------------------------------------------


def test_unknown_log_level_is_named_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None, carebot_log_level="LOUD")
    assert "CAREBOT_LOG_LEVEL" in str(err.value)
    assert load_settings(_env_file=None, carebot_log_level="debug").carebot_log_level == "DEBUG"
    proc = carebot("db", "upgrade", env={"CAREBOT_LOG_LEVEL": "LOUD",
                                         "DATABASE_URL": f"sqlite:///{tmp_path}/c.db"},
                   cwd=tmp_path)
    assert_one_clean_line(proc, "CAREBOT_LOG_LEVEL")


@pytest.mark.parametrize("password", ["ab/cd+ef=", "ab#cd", "pa@Wq9z"])
def test_database_url_with_an_unencoded_password_is_explained(password: str) -> None:
    """compose builds DATABASE_URL from POSTGRES_PASSWORD as it is: a password holding
    a URL delimiter breaks the URL (and with an @ its tail was shown as the host)."""
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None,
                      database_url=f"postgresql://carebot:{password}@postgres:5432/carebot")
    assert "DATABASE_URL" in str(err.value) and "percent-encoded" in str(err.value)
    assert password.split("/")[0] not in str(err.value)
    assert password.split("@")[-1] not in str(err.value)


def test_database_url_with_a_non_numeric_port_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None,
                      database_url=f"postgresql://carebot:{PASSWORD}@db:notaport/carebot")
    assert "DATABASE_URL" in str(err.value) and "port" in str(err.value)
    assert PASSWORD not in str(err.value)
    encoded = load_settings(_env_file=None,
                            database_url="postgresql://carebot:a%40b%2Fc@db:5432/carebot")
    assert encoded.database_url == "postgresql+psycopg://carebot:a%40b%2Fc@db:5432/carebot"


# -- the database is down ---------------------------------------------------------------


@pytest.mark.parametrize("args", [("db", "upgrade"), ("outbox", "list"), ("sources", "poll")])
def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path,
                                                               args: tuple[str, ...]) -> None:
    url = f"postgresql://carebot:{PASSWORD}@127.0.0.1:{closed_port()}/carebot"
    proc = carebot(*args, env={"DATABASE_URL": url}, cwd=tmp_path)
    assert_one_clean_line(proc, "DATABASE_URL", "Connection refused")
    assert proc.returncode == 2


def test_sqlite_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    proc = carebot("outbox", "list", env={"DATABASE_URL": "sqlite:////nonexistent-dir/c.db"},
                   cwd=tmp_path)
    assert_one_clean_line(proc, "DATABASE_URL", "unable to open database file")


# -- the care configuration -------------------------------------------------------------


def test_care_config_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "care.yml"
    path.write_bytes(b"triage_channel: C1\ndepartments: {}\nrouting: {}\n# caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        load_care_config(path)
    assert str(path) in str(err.value) and "UTF-8" in str(err.value)


def test_unquoted_digest_times_are_read_as_times(tmp_path: Path) -> None:
    """YAML 1.1 reads an unquoted 8:30 as the sexagesimal integer 510."""
    path = tmp_path / "care.yml"
    path.write_text("departments: {}\nrouting: {}\ntriage_channel: C1\n"
                    "stats: {digests: {daily_time: 8:30, weekly_time: 17:05}}\n")
    assert yaml.safe_load(path.read_text())["stats"]["digests"]["daily_time"] == 510
    digests = load_care_config(path).stats.digests
    assert (digests.daily_time, digests.weekly_time) == ("08:30", "17:05")
    path.write_text("departments: {}\nrouting: {}\ntriage_channel: C1\n"
                    "stats: {digests: {daily_time: 25:00}}\n")
    with pytest.raises(ConfigError) as err:
        load_care_config(path)
    assert "stats.digests.daily_time" in str(err.value) and "HH:MM" in str(err.value)


# -- files and ports ------------------------------------------------------------------------


def test_reviews_export_to_an_unwritable_path_is_one_line(tmp_path: Path) -> None:
    proc = carebot("reviews", "export", "--out", str(tmp_path / "no-such-dir" / "r.csv"),
                   env={"DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}, cwd=tmp_path)
    assert_one_clean_line(proc, "no-such-dir")


class _RecordingSlack(BaseHTTPRequestHandler):
    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.calls.append(self.path)
        body = json.dumps({"ok": False, "error": "invalid_auth"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_slack() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    handler = type("Handler", (_RecordingSlack,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/", calls
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", [[], ["--socket"]])
def test_port_in_use_stops_the_bot_before_it_starts(
        tmp_path: Path, recording_slack: tuple[str, list[str]], mode: list[str]) -> None:
    """In Socket Mode the HTTP listener (health checks, /ingest) used to fail in its
    thread, its shutdown stopped the workers and the scheduler, and the bot went on
    taking Slack events that nothing would ever deliver."""
    api_url, calls = recording_slack
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s" * 32,
               "SLACK_APP_TOKEN": "xapp-1-A0-auditapptoken", "INGEST_TOKEN": "i" * 24,
               "CAREBOT_MODEL": "rules", "SLACK_API_URL": api_url,
               "DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}
        proc = carebot("run", *mode, "--host", "127.0.0.1", "--port", str(port), env=env,
                       cwd=tmp_path)
    assert_one_clean_line(proc, f"127.0.0.1:{port}", "--port")
    assert proc.returncode == 2
    assert calls == []  # never connected to Slack
    assert not (tmp_path / "c.db").exists()  # nor migrated, started workers or jobs


# -- the app manifest ---------------------------------------------------------------------

#: Bot scopes each Web API method needs, for the conversation types carebot uses it
#: on (Slack's method docs). The outbox re-reads the history of every conversation it
#: posts a message to when an earlier attempt may have posted it, and it posts the
#: after-action review into the escalator's DM.
NEEDED_SCOPES = {
    "chat_postMessage": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_update": {"chat:write"},
    "conversations_history": {"channels:history", "groups:history", "im:history"},
    "conversations_replies": {"channels:history", "groups:history", "im:history"},
    "conversations_open": {"im:write"},
    "files_upload_v2": {"files:write"},
    "usergroups_users_list": {"usergroups:read"},
    "views_open": set(),
    "views_publish": set(),
    "auth_test": set(),
}


def test_manifest_grants_every_scope_the_code_uses() -> None:
    used = set()
    for path in (ROOT / "handlers").glob("*.py"):
        used |= set(re.findall(r"client\.([a-z]+_[A-Za-z_]+)\b", path.read_text()))
    used |= {"auth_test"}
    unknown = used - set(NEEDED_SCOPES)
    assert not unknown, f"add the scopes of {unknown} to NEEDED_SCOPES"
    manifest = yaml.safe_load((ROOT / "app-manifest.yml").read_text())
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    missing = {m: NEEDED_SCOPES[m] - granted for m in used if NEEDED_SCOPES[m] - granted}
    assert missing == {}


def test_events_in_manifest_have_their_scopes() -> None:
    manifest = yaml.safe_load((ROOT / "app-manifest.yml").read_text())
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    needs = {"message.channels": "channels:history", "message.groups": "groups:history",
             "message.im": "im:history", "app_mention": "app_mentions:read",
             "app_home_opened": None}
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        assert event in needs, f"add {event} to this table"
        assert needs[event] is None or needs[event] in granted, event


def test_sources_poll_without_sources_says_so(tmp_path: Path) -> None:
    """The default config has no listening sources: the command said nothing at all."""
    proc = carebot("sources", "poll", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"},
                   cwd=tmp_path)
    assert proc.returncode == 1
    assert "no listening sources are configured" in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(("lease", "timeout"), [(60.0, 10), (3.0, 1), (9.0, 4)])
def test_an_outbox_call_ends_inside_its_lease(tmp_path: Path, lease: float,
                                              timeout: int) -> None:
    """A Slack call that outlives the lease of the row it sends lets another replica
    take the row over mid-call and send it again: the outbox's HTTP timeout is at most
    half the lease."""
    from bot.app import build_runtime
    from bot.classify.factory import rules_classifier

    settings = load_settings(slack_bot_token="xoxb-test", slack_signing_secret="s" * 32,
                             ingest_token="i" * 32, carebot_lease_seconds=lease,
                             slack_api_url="http://127.0.0.1:9/api/",
                             database_url=f"sqlite:///{tmp_path}/t.db", _env_file=None)
    config = load_care_config(None)
    runtime = build_runtime(settings, config=config, classifier=rules_classifier(config))
    try:
        assert runtime.deliverer.client.timeout == timeout
    finally:
        runtime.engine.dispose()
