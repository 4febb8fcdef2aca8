"""``/care watch add|remove|list``: watch lists (MVPs, influencers, big customers, custom)."""

from __future__ import annotations

from bot.errors import InvalidInput, NotAllowed
from bot.services import Services
from handlers.blocks import escape, truncate
from handlers.commands import CareCommand, CareRegistry, who

FORMS = "`/care watch add|remove <list> <@handle|source:@handle>`, `/care watch list [list]`"
USAGE = (f"Usage: {FORMS}. "
         "Lists: mvp, influencer, big_customer, or any custom name.")


def register_care(registry: CareRegistry, services: Services) -> None:
    def watch(cmd: CareCommand) -> None:
        cmd.ack()
        attention = services.attention
        verb = cmd.args[0].lower() if cmd.args else "list"
        if verb in ("add", "remove") and len(cmd.args) == 3:
            try:
                text = change(cmd, verb, list_name=cmd.args[1], handle=cmd.args[2])
            except NotAllowed as exc:
                admins = services.config.attention.watch.admins
                text = f":warning: {exc} " + (f"Watch-list admins: {who(admins)}." if admins
                                              else "No watch-list admins are set up yet.")
            except InvalidInput as exc:  # e.g. the handle and the list swapped
                text = f":warning: {exc} {USAGE}"
        elif verb == "list" and len(cmd.args) <= 2:
            lists = attention.watch_lists(cmd.args[1].lower() if len(cmd.args) == 2 else None)
            lines = [f"• *{escape(name)}*: {', '.join(escape(h) for h in handles)}"
                     for name, handles in lists.items()]
            text = "*Watch lists*\n" + ("\n".join(lines) or "none yet")
        else:
            text = USAGE
        cmd.respond(text=truncate(text, 3900), response_type="ephemeral")

    def change(cmd: CareCommand, verb: str, *, list_name: str, handle: str) -> str:
        attention = services.attention
        if verb == "add":
            changed = attention.watch_add(user=cmd.user, list_name=list_name, handle=handle)
            return (f":star: `{escape(handle)}` is now on *{escape(list_name.lower())}*."
                    if changed else f"`{escape(handle)}` was already on that list.")
        changed = attention.watch_remove(user=cmd.user, list_name=list_name, handle=handle)
        return (f"`{escape(handle)}` is off *{escape(list_name.lower())}*."
                if changed else f"`{escape(handle)}` was not on that list.")

    registry.add("watch", f"{FORMS} — watch lists shown on cards (admins change them)", watch)
