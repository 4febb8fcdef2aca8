"""``/care stats``, ``/care digest`` and ``/care export`` for managers.

Each subcommand acks at once, checks the caller is a manager, makes one
service call, renders, and answers: ephemerally (charts and files to the
caller's DM) unless ``public`` was asked for, in which case the numbers and
charts go to the channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from slack_sdk import WebClient

from bot.charts import Chart, stats_charts
from bot.errors import InvalidInput, NotAllowed
from bot.services import Services
from bot.services.reports import Reports
from handlers.commands import CareCommand, CareRegistry, who
from handlers.digest_blocks import daily_messages, stats_messages, weekly_messages

log = logging.getLogger(__name__)

ONE_DAY = timedelta(days=1)

STATS_HELP = ("`/care stats [today|7d|30d|YYYY-MM-DD..YYYY-MM-DD] [department|category] "
              "[public]` — numbers and charts (managers)")
DIGEST_HELP = ("`/care digest preview|send [daily|weekly] [department]` — the scheduled "
               "digests, now (managers)")
EXPORT_HELP = "`/care export [range]` — CSV of mentions and engagements to you (managers)"


def dm_channel(client: WebClient, user: str) -> str:
    """The id of the bot's direct message channel with ``user``."""
    return str(client.conversations_open(users=user)["channel"]["id"])


def upload(client: WebClient, channel: str, files: Sequence[Chart], comment: str) -> None:
    """Upload files with ``files_upload_v2`` (getUploadURLExternal → POST → complete)."""
    client.files_upload_v2(
        file_uploads=[{"file": f.png, "filename": f.filename, "title": f.title} for f in files],
        channel=channel, initial_comment=comment)


def register_care(registry: CareRegistry, services: Services) -> None:
    reports = Reports(services)

    def require_manager(cmd: CareCommand) -> None:
        def members(group: str) -> list[str]:
            return list(cmd.client.usergroups_users_list(usergroup=group).get("users") or [])

        if not reports.is_manager(cmd.user, members):
            managers = [*reports.stats_config.managers, *reports.stats_config.manager_groups]
            named = f" Managers: {who(managers)}." if managers else ""
            raise NotAllowed(f"`/care {cmd.name}` is for managers; ask an admin to add you "
                             f"to `stats.managers` in the care config.{named}")

    def stats(cmd: CareCommand) -> None:
        cmd.ack()
        require_manager(cmd)
        query = reports.parse(cmd.args)
        report = reports.stats(query)
        scope = query.department or query.category or "all departments"
        response_type = "in_channel" if query.public else "ephemeral"
        for payload in stats_messages(report, scope=scope):
            cmd.respond(response_type=response_type, replace_original=False, **payload)
        target = cmd.channel if query.public else dm_channel(cmd.client, cmd.user)
        upload(cmd.client, target, stats_charts(report),
               f"Charts for care stats — {scope}, {report.period.label}")

    def digest(cmd: CareCommand) -> None:
        cmd.ack()
        require_manager(cmd)
        words = [a.lower() for a in cmd.args]
        action = words[0] if words else "preview"
        kind = "weekly" if "weekly" in words else "daily"
        departments = [w for w in words[1:] if w in services.config.departments]
        unknown = [w for w in words[1:] if w not in ("daily", "weekly", *departments)]
        if action not in ("preview", "send") or unknown or len(departments) > 1:
            raise InvalidInput(f"Usage: {DIGEST_HELP.split(' — ')[0]}")
        if kind == "weekly" and departments:
            raise InvalidInput("The weekly digest covers every department; leave out "
                               f"`{departments[0]}`, or ask for the daily one.")
        department = departments[0] if departments else None
        now = services.clock()
        if action == "preview":
            if kind == "weekly":
                payloads = weekly_messages(reports.weekly_digest(
                    reports.local_date(now) - ONE_DAY))
            else:
                day = reports.local_date(now) - ONE_DAY
                payloads = [p for d in reports.daily_digests(day, department=department)
                            for p in daily_messages(d)]
            for payload in payloads[:5]:  # a response_url takes five messages
                cmd.respond(response_type="ephemeral", replace_original=False, **payload)
            if len(payloads) > 5:
                cmd.respond(response_type="ephemeral", replace_original=False,
                            text=f"…{len(payloads) - 5} more messages in the real digest.")
            return
        if kind == "weekly":
            queued = reports.send_weekly(now, weekly_messages, manual=True)
        else:
            queued = reports.send_daily(now, daily_messages, manual=True, department=department)
        where = ", ".join(f"<#{c}> ({n} message{'s' if n != 1 else ''})"
                          for c, n in queued.targets) or "nowhere: no digest channel is configured"
        cmd.respond(response_type="ephemeral", replace_original=False,
                    text=f"Sent the {kind} digest to {where}.")

    def export(cmd: CareCommand) -> None:
        cmd.ack()
        require_manager(cmd)
        if len(cmd.args) > 1:
            raise InvalidInput("Usage: `/care export [today|7d|30d|YYYY-MM-DD..YYYY-MM-DD]`")
        period = reports.period(cmd.args[0] if cmd.args else "7d")
        name, data, rows = reports.export_csv(period)
        cmd.client.files_upload_v2(content=data, filename=name, title=name,
                                   channel=dm_channel(cmd.client, cmd.user),
                                   initial_comment=f"{rows} mentions, {period.label}")
        cmd.respond(response_type="ephemeral", replace_original=False,
                    text=f"Exported {rows} mentions ({period.label}); the CSV is in your DMs.")

    registry.add("stats", STATS_HELP, stats)
    registry.add("digest", DIGEST_HELP, digest)
    registry.add("export", EXPORT_HELP, export)
