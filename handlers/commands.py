"""The ``/care`` slash command."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.services import Services
from handlers.ids import SlashCommand

HELP = """*carebot* — `/care` commands
• `/care help` — this help
• `/care queue` — unclaimed mentions per channel"""


def register(app: App, services: Services) -> None:
    @app.command(SlashCommand.CARE)
    def care(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        words = (command.get("text") or "").split()
        sub = words[0].lower() if words else "help"
        if sub == "help":
            ack(text=HELP)
            return
        if sub == "queue":
            ack()
            counts = services.unclaimed_by_channel()
            lines = [f"• <#{channel}>: {count}" for channel, count in sorted(counts.items())]
            respond(text="*Unclaimed mentions*\n" + ("\n".join(lines) or "none — all clear"),
                    response_type="ephemeral")
            return
        ack(text=f"Unknown subcommand `{sub}`.\n{HELP}")
