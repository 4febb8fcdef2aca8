"""App Home: my claimed mentions, the unclaimed queue by priority, SLA, my conversions.

Published with ``views.publish`` whenever the user opens the Home tab.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.services import Services
from bot.services.attention import HomeItem, HomeView
from handlers.blocks import CATEGORY_EMOJI, escape, slack_date, truncate
from handlers.errors import guarded

MAX_HOME_BLOCKS = 100
SLA_EMOJI = {"ok": ":large_green_circle:", "warning": ":large_yellow_circle:",
             "breached": ":red_circle:", "met": ":white_check_mark:", "none": ":white_circle:"}


def render_home(view: HomeView) -> View:
    """The Home tab; validated against Block Kit limits (100 blocks, field lengths)."""
    sla = view.sla
    if view.conversion_score is None:
        conversions = "no conversions tagged yet"
    else:
        # The same figure, written the same way, as /care conversions shows it.
        conversions = (f"*{view.conversion_score:+.2f}* average over "
                       f"{view.conversions} tagged engagement(s)")
    blocks: list[Block] = [
        HeaderBlock(block_id="title", text="carebot"),
        SectionBlock(block_id="summary", text=MarkdownTextObject(text=(
            f"*SLA (open mentions):* {SLA_EMOJI['breached']} {sla.get('breached', 0)} breached"
            f"  ·  {SLA_EMOJI['warning']} {sla.get('warning', 0)} at risk"
            f"  ·  {SLA_EMOJI['ok']} {sla.get('ok', 0)} on time\n"
            f"*My conversion score:* {conversions}"))),
        DividerBlock(),
        HeaderBlock(block_id="mine",
                    text=f"My claimed mentions ({_count(view.claimed, view.claimed_total)})"),
    ]
    blocks += _items(view.claimed, "mine", "Nothing claimed — pick one from the queue below.")
    blocks += [DividerBlock(),
               HeaderBlock(block_id="queue", text="Unclaimed, highest priority first ("
                           f"{_count(view.unclaimed, view.unclaimed_total)})")]
    blocks += _items(view.unclaimed, "queue", "The queue is empty. :tada:")
    blocks.append(ContextBlock(block_id="updated", elements=[MarkdownTextObject(
        text="Updated " + slack_date(view.generated_at, "{date_short_pretty} {time}"))]))
    if len(blocks) > MAX_HOME_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks; a Home tab holds at most {MAX_HOME_BLOCKS}")
    home = View(type="home", blocks=blocks)
    home.validate_json()
    for block in blocks:
        block.validate_json()
    return home


def _count(shown: list[HomeItem], total: int) -> str:
    """``3``, or ``15 of 40`` when only the highest-priority few are listed."""
    return str(total) if len(shown) >= total else f"{len(shown)} of {total}"


def _items(items: list[HomeItem], prefix: str, empty: str) -> list[Block]:
    if not items:
        return [SectionBlock(block_id=f"{prefix}-empty", text=MarkdownTextObject(text=empty))]
    return [SectionBlock(block_id=f"{prefix}-{item.mention_id}",
                         text=MarkdownTextObject(text=_item_text(item))) for item in items]


def _item_text(item: HomeItem) -> str:
    emoji = CATEGORY_EMOJI.get(item.category or "", ":speech_balloon:")
    status = SLA_EMOJI.get(item.sla_status, "")
    due = ""
    if item.due_at is not None and item.sla_status in ("ok", "warning"):
        due = " due " + slack_date(item.due_at, "{time}")
    badges = "".join(f"  :star: {escape(name)}" for name in item.watch_lists)
    if item.follow_up:
        badges += "  :eyes: follow-up"
    where = f" in <#{item.channel}>" if item.channel else ""
    head = (f"{emoji} *{item.priority}* · {item.category or '?'} · @{escape(item.author)}"
            f"{where}  {status} {item.sla_status}{due}{badges}")
    return truncate(f"{head}\n> {escape(item.text)}", 3000)


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    @guarded
    def home_opened(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        user = event.get("user")
        if event.get("tab", "home") != "home" or not isinstance(user, str) or not user:
            return  # another tab, or no user whose Home to render
        view = render_home(services.attention.home(user=user))
        client.views_publish(user_id=user, view=view.to_dict())
