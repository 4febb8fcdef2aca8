"""The card's modals, as pure functions of view-models, and their input parsing.

Every modal carries a :class:`~handlers.ids.ModalRef` in ``private_metadata``
(the mention, the card's channel, the escalation) and names its inputs with
the block ids below, which :func:`values` reads back on submission.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.domain import Category, Sentiment
from bot.services.escalation import SEVERITIES
from bot.views import ModalContext
from handlers.blocks import MAX_SECTION, escape, truncate
from handlers.ids import ModalCallback, ModalRef

#: The one action id of every input element; the block id names the field.
VALUE = "value"

SENTIMENT_LABELS = {Sentiment.NEGATIVE: "Negative", Sentiment.NEUTRAL: "Neutral",
                    Sentiment.POSITIVE: "Positive"}


def _mention(ctx: ModalContext) -> SectionBlock:
    text = f"*@{escape(ctx.author)}* on {escape(ctx.source)}\n> " + \
        escape(truncate(ctx.text, 500)).replace("\n", "\n> ")
    # Escaping can make a long name and 500 characters of text outgrow a section.
    return SectionBlock(block_id="mention",
                        text=MarkdownTextObject(text=truncate(text, MAX_SECTION)))


def _text_input(block_id: str, label: str, *, multiline: bool = True, initial: str | None = None,
                optional: bool = False, max_length: int = 3000,
                placeholder: str | None = None) -> InputBlock:
    return InputBlock(block_id=block_id, label=label, optional=optional,
                      element=PlainTextInputElement(action_id=VALUE, multiline=multiline,
                                                    initial_value=initial or None,
                                                    max_length=max_length,
                                                    placeholder=placeholder))


def _select(block_id: str, label: str, options: dict[str, str],
            initial: str | None = None) -> InputBlock:
    opts = [Option(text=text, value=value) for value, text in options.items()]
    chosen = next((o for o in opts if o.value == initial), None)
    return InputBlock(block_id=block_id, label=label,
                      element=StaticSelectElement(action_id=VALUE, options=opts,
                                                  initial_option=chosen,
                                                  placeholder="Choose…"))


def _modal(callback: ModalCallback, title: str, submit: str, ref: ModalRef,
           blocks: list[Block]) -> View:
    view = View(type="modal", callback_id=callback, title=title, submit=submit, close="Cancel",
                private_metadata=ref.dump(), blocks=blocks)
    view.validate_json()
    return view


def respond_modal(ctx: ModalContext, ref: ModalRef) -> View:
    if ctx.reply_capable:
        how = f":outbox_tray: carebot will post this reply on {escape(ctx.source)}."
    else:
        how = (f":clipboard: carebot cannot post on {escape(ctx.source)}: the card will show "
               "copy-ready text and the link; post it, then press *Mark responded*.")
    return _modal(ModalCallback.RESPOND, "Respond", "Save reply", ref, [
        _mention(ctx),
        _text_input("reply", "Your reply", initial=ctx.draft),
        ContextBlock(block_id="how", elements=[MarkdownTextObject(text=how)]),
    ])


def escalate_modal(ctx: ModalContext, ref: ModalRef) -> View:
    return _modal(ModalCallback.ESCALATE, "Social 911", "Escalate", ref, [
        _mention(ctx),
        _select("severity", "Severity", SEVERITIES),
        _text_input("reason", "Reason", multiline=False, max_length=2000,
                    placeholder="Why does this need the escalation team?"),
        _text_input("context", "Customer context", optional=True, max_length=2000,
                    placeholder="Account, history, what they have tried…"),
    ])


def conversion_modal(ctx: ModalContext, ref: ModalRef) -> View:
    labels = {s.value: text for s, text in SENTIMENT_LABELS.items()}
    return _modal(ModalCallback.CONVERSION, "Tag conversion", "Save", ref, [
        _mention(ctx),
        _select("before", "Sentiment before", labels, initial=ctx.sentiment or "negative"),
        _select("after", "Sentiment after", labels),
    ])


def reclassify_modal(ctx: ModalContext, ref: ModalRef) -> View:
    options = {c.value: c.value.upper() if c is not Category.NOISE else "NOISE (not posted)"
               for c in Category}
    return _modal(ModalCallback.RECLASSIFY, "Reclassify", "Move card", ref, [
        _mention(ctx),
        _select("category", "Category", options, initial=ctx.category),
    ])


def note_modal(ctx: ModalContext, ref: ModalRef) -> View:
    return _modal(ModalCallback.NOTE, "Internal note", "Add note", ref, [
        _mention(ctx),
        _text_input("note", "Note (staff only, posted in the card's thread)"),
    ])


def review_modal(ctx: ModalContext, ref: ModalRef) -> View:
    yes_no = [Option(text="Yes", value="yes"), Option(text="No", value="no")]
    return _modal(ModalCallback.REVIEW, "After-action review", "Submit", ref, [
        _mention(ctx),
        _text_input("outcome", "Outcome", max_length=2000),
        _text_input("without", "What would likely have happened without intervention?",
                    max_length=2000),
        _text_input("better", "What could have gone better?", optional=True, max_length=2000),
        InputBlock(block_id="appropriate", label="Was the intervention appropriate?",
                   element=RadioButtonsElement(action_id=VALUE, options=yes_no)),
    ])


def values(body: dict[str, Any]) -> dict[str, str | None]:
    """The submitted inputs by block id (text, or the selected option's value)."""
    state = ((body.get("view") or {}).get("state") or {}).get("values") or {}
    out: dict[str, str | None] = {}
    for block_id, actions in state.items():
        element = (actions or {}).get(VALUE) or {}
        if "selected_option" in element:
            out[block_id] = (element.get("selected_option") or {}).get("value")
        else:
            out[block_id] = element.get("value")
    return out
