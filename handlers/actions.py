"""Card button and overflow listeners.

Shape of each: ``ack()`` → parse the value → one service call (or open a
modal at once, while the ``trigger_id`` is fresh). The card is re-rendered by
the outbox from the state the service recorded.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.services import Services
from bot.services.permissions import Permission
from handlers import modals
from handlers.errors import guarded
from handlers.ids import CardAction, CardRef, ModalRef, MoreAction, MoreRef
from handlers.workflow_blocks import BlockKitMessages


def _action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    return dict(actions[0])


def _value(body: dict[str, Any]) -> str | None:
    return _action(body).get("value")


def _channel(body: dict[str, Any]) -> str | None:
    return (body.get("channel") or {}).get("id")


def register(app: App, services: Services) -> None:
    workflow = services.workflow

    def group_members(group: str) -> set[str]:
        return set(app.client.usergroups_users_list(usergroup=group).get("users") or [])

    workflow.permissions.set_group_resolver(group_members)
    workflow.escalations.messages = BlockKitMessages()

    def open_modal(body: dict[str, Any], client: WebClient, mention_id: int,
                   render: Any, escalation: int | None = None) -> None:
        ctx = workflow.modal_context(mention_id)
        ref = ModalRef(m=mention_id, c=_channel(body), e=escalation)
        client.views_open(trigger_id=body["trigger_id"], view=render(ctx, ref))

    @app.action(CardAction.CLAIM)
    @guarded
    def claim(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        services.claim(mention_id=ref.m, user=body["user"]["id"])

    @app.action(CardAction.UNCLAIM)
    @guarded
    def unclaim(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        services.unclaim(mention_id=ref.m, user=body["user"]["id"])

    @app.action(CardAction.OPEN_LINK)
    def open_link(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL; we only acknowledge

    @app.action(CardAction.RESPOND)
    @guarded
    def respond(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        open_modal(body, client, CardRef.parse(_value(body)).m, modals.respond_modal)

    @app.action(CardAction.CONFIRM_RESPONDED)
    @guarded
    def confirm_responded(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        workflow.confirm_responded(mention_id=ref.m, user=body["user"]["id"])

    @app.action(CardAction.ESCALATE)
    @guarded
    def escalate(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        workflow.require(body["user"]["id"], Permission.ESCALATE)  # refuse before the form
        open_modal(body, client, ref.m, modals.escalate_modal)

    @app.action(CardAction.RESOLVE)
    @guarded
    def resolve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        workflow.resolve(mention_id=ref.m, user=body["user"]["id"])

    @app.action(CardAction.REOPEN)
    @guarded
    def reopen(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = CardRef.parse(_value(body))
        workflow.reopen(mention_id=ref.m, user=body["user"]["id"])

    @app.action(CardAction.NOTE)
    @guarded
    def note(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        open_modal(body, client, CardRef.parse(_value(body)).m, modals.note_modal)

    @app.action(CardAction.RECLASSIFY)
    @guarded
    def reclassify(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        open_modal(body, client, CardRef.parse(_value(body)).m, modals.reclassify_modal)

    @app.action(CardAction.REVIEW)
    @guarded
    def review(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = ModalRef.parse(_value(body))
        open_modal(body, client, ref.m, modals.review_modal, escalation=ref.e)

    @app.action(CardAction.MORE)
    @guarded
    def more(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        ref = MoreRef.parse((_action(body).get("selected_option") or {}).get("value"))
        user = body["user"]["id"]
        if ref.a is MoreAction.CONVERSION:
            open_modal(body, client, ref.m, modals.conversion_modal)
        elif ref.a is MoreAction.RECLASSIFY:
            open_modal(body, client, ref.m, modals.reclassify_modal)
        elif ref.a is MoreAction.NOISE:
            workflow.mark_noise(mention_id=ref.m, user=user)
        else:
            workflow.toggle_flag(mention_id=ref.m, user=user, flag=ref.a.value)
