"""Block Kit rendering: pure functions from view-models to blocks."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.services.mrkdwn import escape as escape  # re-exported for the handlers
from bot.views import CardView

MAX_BLOCKS = 50
MAX_SECTION = 3000
#: The longest link carebot writes (what ``/ingest`` accepts); a longer one is left out.
MAX_URL = 2048
#: What may not appear raw in a URL inside ``<url|label>`` or a button: the link's own
#: delimiters, quotes, whitespace and control characters.
_URL_UNSAFE = re.compile(r'[<>|"\s\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]')

CATEGORY_EMOJI = {
    "case": ":sos:",
    "query": ":question:",
    "rant": ":rage:",
    "rave": ":heart:",
    "lead": ":moneybag:",
    "rfe": ":bulb:",
    "fraud": ":rotating_light:",
    "noise": ":zzz:",
}
SENTIMENT_EMOJI = {"negative": ":slightly_frowning_face:", "neutral": ":neutral_face:",
                   "positive": ":slightly_smiling_face:"}


def safe_url(url: str | None) -> str | None:
    """``url`` with the characters that could end a Slack link percent-encoded, so
    that a customer's URL cannot close carebot's link and open a ping or another link
    of its own; ``None`` when there is no URL, it is not http(s), or it is too long."""
    if not url or not url.startswith(("http://", "https://")):
        return None
    encoded = _URL_UNSAFE.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode()), url)
    return encoded if len(encoded) <= MAX_URL else None


def link(url: str | None, label: str) -> str | None:
    """A mrkdwn link to ``url`` labelled ``label`` (carebot's own, trusted label);
    ``None`` when the URL cannot be linked safely."""
    safe = safe_url(url)
    return None if safe is None else f"<{safe.replace('&', '&amp;')}|{label}>"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_date(when: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """A date that Slack shows in each reader's own timezone."""
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{fmt}|{fallback}>"


def human_count(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1_000:.0f}k"
    if value >= 1_000:
        return f"{value / 1_000:.1f}k"
    return str(value)


def card_fallback_text(view: CardView) -> str:
    """Notification text (also what screen readers announce)."""
    label = view.category or "unclassified"
    prefix = "[triage] " if view.triage else ""
    return truncate(f"{prefix}[{label}] @{escape(view.author)}: {escape(view.text)}", 300)


def render_card(view: CardView, *, channel: str | None = None) -> list[Block]:
    """The mention card, in the variant its state calls for.

    ``channel`` is where this copy of the card lives; when the mention has
    moved elsewhere (reclassified), the copy points there and has no buttons.
    """
    if channel and view.moved_to_channel and view.moved_to_channel != channel:
        return check_message(render_moved(view))
    category = view.category or "unclassified"
    emoji = CATEGORY_EMOJI.get(category, ":speech_balloon:")
    confidence = f"{view.confidence:.0%}" if view.confidence is not None else "?"
    if view.triage:
        headline = (f":mag: *Needs triage* — best guess {emoji} *{category}* "
                    f"({confidence}, {view.method or 'unknown'})")
    else:
        headline = (f"{emoji} *{category.upper()}* → {escape(view.department_label or '-')}"
                    f"  ·  {confidence} ({view.method or 'unknown'})")
    author = f"*@{escape(view.author)}*"
    if view.author_reach is not None:
        author += f"  ·  {human_count(view.author_reach)} followers"
    quote = "\n".join("> " + line for line in escape(view.text).splitlines() or [""])
    body = truncate(f"{author}\n{quote}", MAX_SECTION)

    meta: list[str] = [f"*{escape(view.source)}*"]
    if original := link(view.url, "open original"):
        meta.append(original)
    meta.append(f"lang `{escape(view.lang or '?')}`")
    if view.sentiment:
        score = f" {view.sentiment_score:+.2f}" if view.sentiment_score is not None else ""
        meta.append(f"{SENTIMENT_EMOJI.get(view.sentiment, '')} {view.sentiment}{score}")
    published = view.published_at or view.ingested_at
    meta.append("published " + slack_date(published, "{date_short_pretty} {time} ({ago})"))

    blocks: list[Block] = [
        SectionBlock(block_id="headline", text=MarkdownTextObject(text=headline)),
        SectionBlock(block_id="body", text=MarkdownTextObject(text=body)),
        ContextBlock(block_id="meta", elements=[MarkdownTextObject(text="  ·  ".join(meta))]),
    ]
    badges = attention_badges(view)
    if badges:
        blocks.append(ContextBlock(block_id="attention",
                                   elements=[MarkdownTextObject(text=badges)]))
    # The workflow's state lines and actions (handlers/workflow_blocks.py).
    from handlers.workflow_blocks import actions_block, state_blocks

    blocks += state_blocks(view)
    blocks.append(actions_block(view))
    return check_message(blocks)


SLA_BADGE = {"warning": ":hourglass_flowing_sand: SLA warning",
             "breached": ":rotating_light: SLA breached", "met": ":white_check_mark: SLA met"}


def attention_badges(view: CardView) -> str | None:
    """Priority, customer tier, watch lists, SLA state and follow-up flag, on one line."""
    parts: list[str] = []
    if view.priority is not None:
        parts.append(f"{':fire: ' if view.priority >= 60 else ''}*priority {view.priority}*")
    if view.customer_tier:
        parts.append(f":gem: {escape(view.customer_tier)} customer")
    parts += [f":star: {escape(name)}" for name in view.watch_lists]
    if view.sla_status in SLA_BADGE:
        parts.append(SLA_BADGE[view.sla_status])
    elif view.sla_due_at is not None and view.sla_status == "ok":
        parts.append("first response due " + slack_date(view.sla_due_at, "{time} ({ago})"))
    if view.follow_up_of is not None:
        parts.append(":eyes: follow-up after an engagement — tag a conversion")
    return "  ·  ".join(parts) or None


def check_message(blocks: list[Block]) -> list[Block]:
    """Validate blocks and the 50-block message limit (slack_sdk checks only fields)."""
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks; a message holds at most {MAX_BLOCKS}")
    for block in blocks:
        block.validate_json()
    return blocks


def to_dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


def render_moved(view: CardView) -> list[Block]:
    text = (f":arrow_right: Moved to <#{view.moved_to_channel}> as *{view.category}*"
            f" — @{escape(view.author)}: {escape(truncate(view.text, 200))}")
    return [SectionBlock(block_id="moved", text=MarkdownTextObject(text=text))]
