"""Block Kit for the engagement workflow: the card's state lines and actions, the
escalation post and the after-action review DM. Pure functions of view-models.

Card variants follow ``WorkflowState.status``: new / claimed / responded /
escalated / resolved / noise. Frequent actions are buttons; the less frequent
ones sit in one overflow menu (Slack allows at most five options there).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    Option,
    OverflowMenuElement,
    SectionBlock,
)

from bot.views import CardView, EscalationPostView, ReviewRequestView, WorkflowState
from handlers.blocks import escape, link, safe_url, slack_date, truncate
from handlers.ids import CardAction, CardRef, ModalRef, MoreAction, MoreRef

MAX_SECTION = 3000
MAX_CONTEXT_ELEMENTS = 10

CRM_LABEL = {"pending": ":hourglass: CRM case being opened",
             "parked": ":warning: CRM case failed — parked for retry",
             "created": "CRM case opened (the CRM sent no case id)"}


def _when(when: datetime | None) -> str:
    return "" if when is None else " " + slack_date(when, "{time} ({ago})")


def state_lines(view: CardView) -> list[str]:
    """Who holds it, how it was answered, escalated, resolved."""
    wf = view.workflow or WorkflowState()
    lines: list[str] = []
    if wf.status == "noise":
        by = f" by <@{wf.reclassified_by}>" if wf.reclassified_by else ""
        return [f":zzz: Marked as noise{by} — not posted to a team"]
    if view.claimed_by:
        lines.append(f":raising_hand: Claimed by <@{view.claimed_by}>{_when(view.claimed_at)}")
    if wf.responded_by:
        lines.append(f":speech_balloon: Responded by <@{wf.responded_by}>"
                     f"{_when(wf.first_response_at)}")
    if wf.reply_status == "queued":
        lines.append(f":outbox_tray: Reply by <@{wf.reply_author}> is being sent to "
                     f"{escape(view.source)}")
    if wf.escalated_by:
        who = "automatically" if wf.escalated_by == "carebot" else f"by <@{wf.escalated_by}>"
        line = f":rotating_light: Escalated ({(wf.severity or '?').upper()}) {who}" \
               f"{_when(wf.escalated_at)}"
        if wf.case_id:
            case = escape(wf.case_id).replace("`", "'")  # a backtick would end the span
            line += f"  ·  CRM case `{case}`"
        elif wf.crm_status in CRM_LABEL:
            line += f"  ·  {CRM_LABEL[wf.crm_status]}"
        lines.append(line)
    if wf.resolved_by:
        lines.append(f":white_check_mark: Resolved by <@{wf.resolved_by}>"
                     f"{_when(wf.resolved_at)}")
    if wf.reclassified_by:
        lines.append(f":label: Reclassified by <@{wf.reclassified_by}>")
    return lines


def extra_lines(view: CardView) -> list[str]:
    """Conversion, flags and internal discussion."""
    wf = view.workflow or WorkflowState()
    lines: list[str] = []
    if wf.conversion_before and wf.conversion_after:
        lines.append(f":chart_with_upwards_trend: Sentiment {wf.conversion_before} → "
                     f"{wf.conversion_after} ({wf.conversion_score:+d}), tagged by "
                     f"<@{wf.conversion_by}>")
    if wf.starred_by:
        lines.append(f":star: Starred by <@{wf.starred_by}> for the weekly digest")
    if wf.kb_by:
        lines.append(f":books: KB candidate (<@{wf.kb_by}>)")
    if wf.notes:
        lines.append(f":memo: {wf.notes} internal note{'s' if wf.notes != 1 else ''} "
                     "in the thread")
    return lines


def draft_block(view: CardView) -> SectionBlock | None:
    """Copy-ready reply text and the link, when carebot cannot send it itself."""
    wf = view.workflow or WorkflowState()
    if wf.reply_status not in ("draft", "failed") or not wf.reply_text:
        return None
    where = link(view.url, escape(view.source)) or escape(view.source)
    why = "Sending failed — " if wf.reply_status == "failed" else ""
    head = (f":clipboard: *Copy-ready reply* by <@{wf.reply_author}>. {why}Post it on {where}, "
            "then press *Mark responded*.\n")
    body = "```" + escape(wf.reply_text).replace("```", "'''") + "```"
    return SectionBlock(block_id="draft",
                        text=MarkdownTextObject(text=truncate(head + body, MAX_SECTION)))


def _context(block_id: str, lines: list[str]) -> ContextBlock:
    elements = [MarkdownTextObject(text=truncate(line, 2000))
                for line in lines[:MAX_CONTEXT_ELEMENTS]]
    return ContextBlock(block_id=block_id, elements=elements)


def state_blocks(view: CardView) -> list[Block]:
    blocks: list[Block] = []
    if lines := state_lines(view):
        blocks.append(_context("state", lines))
    if lines := extra_lines(view):
        blocks.append(_context("extra", lines))
    if draft := draft_block(view):
        blocks.append(draft)
    return blocks


def _more(view: CardView, actions: list[MoreAction]) -> OverflowMenuElement:
    wf = view.workflow or WorkflowState()
    labels = {
        MoreAction.CONVERSION: "Tag conversion",
        MoreAction.RECLASSIFY: "Reclassify",
        MoreAction.NOISE: "Mark noise",
        MoreAction.STAR: "Unstar" if wf.starred_by else "Star as interesting",
        MoreAction.KB: "Not a KB candidate" if wf.kb_by else "KB candidate",
    }
    options = [Option(text=labels[a], value=MoreRef(m=view.mention_id, a=a).dump())
               for a in actions]
    return OverflowMenuElement(action_id=CardAction.MORE, options=options)


def actions_block(view: CardView) -> ActionsBlock:
    """The card's buttons for its state, plus the overflow menu."""
    wf = view.workflow or WorkflowState()
    ref = CardRef(m=view.mention_id).dump()
    url = safe_url(view.url)
    open_link = ([ButtonElement(text="Open", action_id=CardAction.OPEN_LINK, url=url)]
                 if url else [])
    if wf.status == "noise":
        elements: list[Any] = [ButtonElement(text="Reclassify", action_id=CardAction.RECLASSIFY,
                                             value=ref), *open_link]
        return ActionsBlock(block_id="actions", elements=elements)
    if wf.status == "resolved":
        elements = [ButtonElement(text="Reopen", action_id=CardAction.REOPEN, value=ref),
                    ButtonElement(text="Note", action_id=CardAction.NOTE, value=ref),
                    *open_link,
                    _more(view, [MoreAction.CONVERSION, MoreAction.RECLASSIFY, MoreAction.STAR,
                                 MoreAction.KB])]
        return ActionsBlock(block_id="actions", elements=elements)
    if view.claimed_by:
        elements = [ButtonElement(text="Unclaim", action_id=CardAction.UNCLAIM, value=ref)]
    else:
        elements = [ButtonElement(text="Claim", action_id=CardAction.CLAIM, value=ref,
                                  style="primary")]
    elements.append(ButtonElement(text="Respond", action_id=CardAction.RESPOND, value=ref))
    if wf.reply_status in ("draft", "failed"):
        elements.append(ButtonElement(text="Mark responded", value=ref, style="primary",
                                      action_id=CardAction.CONFIRM_RESPONDED))
    if not wf.escalated_by:
        elements.append(ButtonElement(text="Escalate", action_id=CardAction.ESCALATE, value=ref,
                                      style="danger"))
    elements.append(ButtonElement(text="Resolve", action_id=CardAction.RESOLVE, value=ref))
    elements.append(ButtonElement(text="Note", action_id=CardAction.NOTE, value=ref))
    elements += open_link
    elements.append(_more(view, [MoreAction.CONVERSION, MoreAction.RECLASSIFY, MoreAction.NOISE,
                                 MoreAction.STAR, MoreAction.KB]))
    return ActionsBlock(block_id="actions", elements=elements)


# -- messages outside the card ---------------------------------------------------


class BlockKitMessages:
    """The workflow's Slack messages in Block Kit (installed by ``handlers.actions``)."""

    def escalation_post(self, view: EscalationPostView) -> dict[str, Any]:
        ping = f"<!subteam^{view.user_group}> " if view.user_group else ""
        who = "automatically" if view.automatic else f"by <@{view.escalated_by}>"
        head = f"{ping}:rotating_light: *Social 911 — {view.severity_label}* escalated {who}"
        quote = "\n".join("> " + line for line in escape(view.text).splitlines() or [""])
        body = f"*@{escape(view.author)}* on {escape(view.source)}\n{quote}"
        details = f"*Reason:* {escape(view.reason)}"
        if view.context:
            details += f"\n*Customer context:* {escape(view.context)}"
        links = []
        if view.card_channel:
            links.append(f"card in <#{view.card_channel}>")
        if original := link(view.url, "open original"):
            links.append(original)
        blocks: list[Block] = [
            SectionBlock(block_id="head", text=MarkdownTextObject(text=head)),
            SectionBlock(block_id="body", text=MarkdownTextObject(
                text=truncate(body, MAX_SECTION))),
            SectionBlock(block_id="details", text=MarkdownTextObject(
                text=truncate(details, MAX_SECTION))),
        ]
        if links:
            blocks.append(ContextBlock(block_id="links", elements=[
                MarkdownTextObject(text="  ·  ".join(links))]))
        for block in blocks:
            block.validate_json()
        return {"text": truncate(f"{ping}Social 911 ({view.severity_label}): "
                                  f"{escape(view.reason)}", 300),
                "blocks": [b.to_dict() for b in blocks],
                "unfurl_links": False, "unfurl_media": False}

    def review_request(self, view: ReviewRequestView) -> dict[str, Any]:
        text = (f":clipboard: The *{view.severity_label}* escalation of "
                f"*@{escape(view.author)}*'s mention was resolved by <@{view.resolved_by}>:\n"
                f"> {escape(truncate(view.text, 300))}\n"
                "How did it go? Your after-action review helps us escalate better.")
        value = ModalRef(m=view.mention_id, e=view.escalation_id).dump()
        blocks: list[Block] = [
            SectionBlock(block_id="review", text=MarkdownTextObject(text=text)),
            ActionsBlock(block_id="actions", elements=[
                ButtonElement(text="Write the review", action_id=CardAction.REVIEW,
                              value=value, style="primary")]),
        ]
        for block in blocks:
            block.validate_json()
        return {"text": "An escalation you raised was resolved: please write an after-action "
                        "review.",
                "blocks": [b.to_dict() for b in blocks]}
