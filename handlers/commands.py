"""The ``/care`` slash command and its subcommand registry.

Feature modules add subcommands with ``registry.add(name, help, handler)``
(see ``register_all``); ``/care help`` lists them. A subcommand handler gets a
parsed ``CareCommand`` and must call ``cmd.ack(...)`` first, within 3 s.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services import Services
from handlers.blocks import escape
from handlers.errors import guarded
from handlers.ids import SlashCommand


@dataclass
class CareCommand:
    """One ``/care`` invocation, parsed once at the edge."""

    name: str
    args: list[str]
    user: str
    channel: str
    ack: Ack
    respond: Respond
    client: WebClient
    body: dict[str, Any]
    trigger_id: str | None = None


SubcommandHandler = Callable[[CareCommand], None]


@dataclass
class CareRegistry:
    handlers: dict[str, tuple[str, SubcommandHandler]] = field(default_factory=dict)

    def add(self, name: str, help_line: str, handler: SubcommandHandler) -> None:
        if name in self.handlers:
            raise ValueError(f"/care {name} is registered twice")
        self.handlers[name] = (help_line, handler)

    def help_text(self) -> str:
        lines = ["*carebot* — `/care` commands", "• `/care help` — this help"]
        lines += [f"• {help_line}" for _, (help_line, _h) in sorted(self.handlers.items())]
        return "\n".join(lines)

    def unknown(self, name: str) -> str:
        """The answer to ``/care <name>`` when no subcommand has that name."""
        # Quoted in mrkdwn code: a backtick typed by the user would end the quote early.
        shown = escape(name.replace("`", ""))
        close = difflib.get_close_matches(name, ["help", *self.handlers], n=1, cutoff=0.6)
        meant = f" Did you mean `/care {close[0]}`?" if close else ""
        return f"Unknown subcommand `{shown}`.{meant}\n{self.help_text()}"


def who(ids: Sequence[str]) -> str:
    """Slack user and user group ids as mentions: ``<@U1>, <!subteam^S1>``."""
    return ", ".join(f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in ids)


def register(app: App, services: Services, registry: CareRegistry) -> None:
    def queue(cmd: CareCommand) -> None:
        cmd.ack()
        counts = services.unclaimed_by_channel()
        lines = [f"• <#{channel}>: {count}" for channel, count in sorted(counts.items())]
        cmd.respond(text="*Unclaimed mentions*\n" + ("\n".join(lines) or "none — all clear"),
                    response_type="ephemeral")

    registry.add("queue", "`/care queue` — unclaimed mentions per channel", queue)

    @app.command(SlashCommand.CARE)
    @guarded
    def care(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        words = (body.get("text") or "").split()
        name = words[0].lower() if words else "help"
        entry = registry.handlers.get(name)
        if name == "help" or entry is None:
            ack(text=registry.help_text() if name == "help" else registry.unknown(name))
            return
        entry[1](CareCommand(name=name, args=words[1:], user=body.get("user_id", ""),
                             channel=body.get("channel_id", ""), ack=ack, respond=respond,
                             client=client, body=body, trigger_id=body.get("trigger_id")))
