"""``/care conversions`` and ``/care reviews``: the workflow's numbers in Slack."""

from __future__ import annotations

from collections.abc import Callable

from bot.csvrows import data_rows
from bot.errors import CarebotError
from bot.services import Services
from bot.services.conversions import conversion_stats
from bot.services.permissions import Permission
from handlers.blocks import escape, truncate
from handlers.commands import CareCommand, CareRegistry, who

GROUPINGS = {"agent": "agent", "department": "department", "dept": "department",
             "week": "period", "period": "period"}
MAX_TEXT = 3900


def register_care(registry: CareRegistry, services: Services) -> None:
    workflow = services.workflow

    def conversions(cmd: CareCommand) -> None:
        cmd.ack()
        key = cmd.args[0].lower() if cmd.args else "agent"
        by = GROUPINGS.get(key)
        if by is None:
            cmd.respond(text="Usage: `/care conversions [agent|department|week]`",
                        response_type="ephemeral")
            return
        stats = conversion_stats(services, by=by)  # type: ignore[arg-type]
        labels: dict[str, Callable[[str], str]] = {
            "agent": lambda k: f"<@{k}>", "department": str,
            "period": lambda k: f"week of {k}"}
        label = labels[by]
        lines = [f"• {label(s.key)}: *{s.average:+.2f}* over {s.count} engagement(s)"
                 for s in stats]
        text = (f"*Sentiment conversion score by {key}* (negative→positive +2, "
                "negative→neutral +1, worse counts against)\n"
                + ("\n".join(lines) or "No conversions tagged yet."))
        cmd.respond(text=truncate(text, MAX_TEXT), response_type="ephemeral")

    def reviews(cmd: CareCommand) -> None:
        cmd.ack()
        try:
            workflow.require(cmd.user, Permission.ADMIN)
        except CarebotError as exc:
            admins = services.config.workflow.permissions.admin
            cmd.respond(text=f":warning: {exc} Admins: {who(admins)} "
                        "(`workflow.permissions.admin` in the care config).",
                        response_type="ephemeral")
            return
        data = workflow.escalations.export_reviews_csv()
        # Rows, not lines: an answer typed over several lines is one quoted CSV field.
        count = data_rows(data)
        if len(data) > MAX_TEXT - 200:
            text = (f"{count} after-action review(s) — too many to show here; export them "
                    "with `carebot reviews export --out reviews.csv`.")
        else:
            # Escaped for mrkdwn, and no run of three backticks may close the block early.
            shown = escape(data).replace("```", "`\u200b``")
            text = f"*{count} after-action review(s)* (CSV):\n```{shown}```"
        cmd.respond(text=text, response_type="ephemeral")

    registry.add("conversions", "`/care conversions [agent|department|week]` — average "
                 "sentiment conversion score", conversions)
    registry.add("reviews", "`/care reviews` — after-action reviews of escalations as CSV "
                 "(admins)", reviews)
