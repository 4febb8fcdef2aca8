"""Modal submissions (``view_submission``).

Shape of each: validate the inputs (a bad one answers ``response_action:
errors`` and keeps the modal open) → ``ack()`` → one service call. A refusal
after ``ack`` (permissions, a conflicting action that won) is told to the user
ephemerally in the card's channel, carried in the modal's ``private_metadata``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.domain import Category
from bot.errors import InvalidInput
from bot.services import Services
from handlers import modals
from handlers.errors import report
from handlers.ids import ModalCallback, ModalRef

F = TypeVar("F", bound=Callable[..., Any])


def guarded_view(listener: F) -> F:
    """Like ``handlers.errors.guarded``, telling the user in the card's channel."""

    @functools.wraps(listener)
    def wrapper(**kwargs: Any) -> Any:
        body = kwargs["body"]
        try:
            return listener(**kwargs)
        except Exception as error:  # noqa: BLE001 - reported to the user and logged
            try:
                channel = ModalRef.parse((body.get("view") or {}).get("private_metadata")).c
            except Exception:  # noqa: BLE001 - no channel: the report goes by DM
                channel = None
            where = {**body, "channel": {"id": channel}} if channel else body
            report(error, where, kwargs["client"])
            return None

    return wrapper  # type: ignore[return-value]


def _ref(body: dict[str, Any]) -> ModalRef:
    return ModalRef.parse((body.get("view") or {}).get("private_metadata"))


def _user(body: dict[str, Any]) -> str:
    return str(body["user"]["id"])


def _required(ack: Ack, fields: dict[str, str | None], *names: str) -> bool:
    """Answer field errors (modal stays open) when a required input is blank."""
    errors = {name: "This is required." for name in names if not (fields.get(name) or "").strip()}
    if errors:
        ack(response_action="errors", errors=errors)
        return False
    return True


def register(app: App, services: Services) -> None:
    workflow = services.workflow

    @app.view(ModalCallback.RESPOND)
    @guarded_view
    def respond(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        fields = modals.values(body)
        if not _required(ack, fields, "reply"):
            return
        try:  # too long for the platform: say so in the form, with the text kept
            workflow.check_reply(mention_id=_ref(body).m, text=fields["reply"] or "")
        except InvalidInput as exc:
            ack(response_action="errors", errors={"reply": str(exc)})
            return
        ack()
        workflow.respond(mention_id=_ref(body).m, user=_user(body), text=fields["reply"] or "")

    @app.view(ModalCallback.ESCALATE)
    @guarded_view
    def escalate(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        fields = modals.values(body)
        if not _required(ack, fields, "severity", "reason"):
            return
        ack()
        workflow.escalations.escalate(mention_id=_ref(body).m, user=_user(body),
                                      severity=fields["severity"] or "",
                                      reason=fields["reason"] or "",
                                      context=fields.get("context"))

    @app.view(ModalCallback.CONVERSION)
    @guarded_view
    def conversion(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        fields = modals.values(body)
        if not _required(ack, fields, "before", "after"):
            return
        ack()
        workflow.tag_conversion(mention_id=_ref(body).m, user=_user(body),
                                before=fields["before"] or "", after=fields["after"] or "")

    @app.view(ModalCallback.RECLASSIFY)
    @guarded_view
    def reclassify(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        fields = modals.values(body)
        try:
            category = Category(fields.get("category") or "")
        except ValueError:
            ack(response_action="errors", errors={"category": "Choose a category."})
            return
        ack()
        workflow.reclassify(mention_id=_ref(body).m, user=_user(body), category=category)

    @app.view(ModalCallback.NOTE)
    @guarded_view
    def note(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        fields = modals.values(body)
        if not _required(ack, fields, "note"):
            return
        ack()
        workflow.add_note(mention_id=_ref(body).m, user=_user(body), text=fields["note"] or "")

    @app.view(ModalCallback.REVIEW)
    @guarded_view
    def review(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        fields = modals.values(body)
        if not _required(ack, fields, "outcome", "without", "appropriate"):
            return
        ref = _ref(body)
        if ref.e is None:
            ack(response_action="errors", errors={"outcome": "This form lost its escalation."})
            return
        ack()
        workflow.escalations.record_review(
            escalation_id=ref.e, user=_user(body), outcome=fields["outcome"] or "",
            without_intervention=fields["without"] or "", could_be_better=fields.get("better"),
            appropriate=fields.get("appropriate") == "yes")
