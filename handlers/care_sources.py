"""``/care sources``: each listening source's health, last success and error, drops."""

from __future__ import annotations

from datetime import datetime

from bot.logs import Redactor
from bot.services import Services
from bot.sources.health import SourceHealth, source_health
from handlers.blocks import escape
from handlers.commands import CareCommand, CareRegistry

STATUS_ICON = {"ok": ":large_green_circle:", "never polled": ":white_circle:",
               "failing": ":red_circle:", "backing off": ":large_orange_circle:",
               "disabled": ":black_circle:"}
#: Secret-shaped text (credentials in URLs, tokens), as the log lines redact it.
redact = Redactor()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


def render_sources(rows: list[SourceHealth], now: datetime) -> str:
    """The reply text: one paragraph per source (pure; tests read it)."""
    if not rows:
        return ("*Listening sources*\nNo sources configured — add a `sources:` section to "
                "the care config (see docs/SOURCES.md).")
    lines = ["*Listening sources*"]
    for row in sorted(rows, key=lambda r: r.name):
        status = row.status(now)
        head = (f"{STATUS_ICON.get(status, '')} *{row.name}* ({row.type}) — {status}; "
                f"last success {_when(row.last_success_at)}")
        lines.append(head)
        c = row.counters
        lines.append(f"    fetched {c['fetched']}, ingested {c['ingested']}, "
                     f"already seen {c['seen']}, duplicates {c['duplicate']}")
        noise = sorted((k.removeprefix("noise:"), v) for k, v in c.items()
                       if k.startswith("noise:") and v)
        if noise:
            lines.append("    dropped as noise: " + ", ".join(f"{k} {v}" for k, v in noise))
        if row.failures or row.last_error:
            # The error names a URL's host (maybe with a feed's credentials) and may
            # quote a remote API's words: redacted like a log line, escaped for mrkdwn.
            error = escape(redact(row.last_error or ""))
            lines.append(f"    last error {_when(row.last_error_at)}: `{error}`"
                         + (f" ({row.failures} in a row)" if row.failures else ""))
        if row.backoff_until is not None and row.backoff_until > now:
            lines.append(f"    next try after {_when(row.backoff_until)}")
    return "\n".join(lines)


def register_care(registry: CareRegistry, services: Services) -> None:
    def sources(cmd: CareCommand) -> None:
        cmd.ack()
        text = render_sources(source_health(services), services.clock())
        cmd.respond(text=text, response_type="ephemeral")

    registry.add("sources", "`/care sources` — listening sources: health, errors, what was "
                 "dropped", sources)
