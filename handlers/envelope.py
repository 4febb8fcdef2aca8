"""The shape of a Slack request body, checked once at the edge before Bolt sees it.

Bolt reads fields of the parsed body while it builds a request's context
(``team``, ``user``, ``channel``, ``event``, ``authorizations``...) and assumes
Slack's types; a correctly signed body with, say, ``"event": 5`` or
``"actions": {}`` would raise inside Bolt and answer 500. These models check
just the fields Bolt and our listeners read, for each kind of body, and leave
everything else alone (``extra="allow"``): the body Bolt dispatches is the
original one, untouched. A body that does not fit gets a 400 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class IdRef(_Open):
    """``{"id": ...}`` objects: user, team, channel, enterprise."""

    id: str
    team_id: str | None = None
    enterprise_id: str | None = None


class _OptionalIdRef(_Open):
    id: str | None = None
    team_id: str | None = None
    enterprise_id: str | None = None


class Authorization(_Open):
    enterprise_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    is_enterprise_install: bool | None = None


class ResponseUrl(_Open):
    response_url: str | None = None


class _Common(_Open):
    type: str | None = None
    token: str | None = None
    api_app_id: str | None = None
    team: str | _OptionalIdRef | None = None
    team_id: str | None = None
    enterprise: str | _OptionalIdRef | None = None
    enterprise_id: str | None = None
    is_enterprise_install: bool | str | None = None
    is_ext_shared_channel: bool | None = None
    authorizations: list[Authorization] | None = None
    user: str | _OptionalIdRef | None = None
    user_id: str | None = None
    channel: str | _OptionalIdRef | None = None
    channel_id: str | None = None
    item: dict[str, Any] | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    response_urls: list[ResponseUrl] | None = None
    trigger_id: str | None = None
    function_execution_id: str | None = None
    function_data: dict[str, Any] | None = None
    assistant_thread: dict[str, Any] | None = None
    bot_access_token: str | None = None


class Event(_Open):
    type: str
    user: str | _OptionalIdRef | None = None
    user_id: str | None = None
    user_team: str | None = None
    team: str | None = None
    channel: str | _OptionalIdRef | None = None
    channel_type: str | None = None
    item: dict[str, Any] | None = None
    ts: str | None = None
    thread_ts: str | None = None
    event_ts: str | None = None
    text: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    tab: str | None = None
    inputs: dict[str, Any] | None = None
    bot_access_token: str | None = None
    function_execution_id: str | None = None


class EventCallback(_Common):
    event_id: str
    event: Event


class UrlVerification(_Common):
    challenge: str


class Option(_Open):
    value: str


class Action(_Open):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    type: str | None = None
    action_ts: str | None = None
    selected_option: Option | None = None


class Message(_Open):
    user: str | _OptionalIdRef | None = None
    ts: str | None = None
    thread_ts: str | None = None
    text: str | None = None


class ViewState(_Open):
    values: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


class View(_Open):
    id: str | None = None
    callback_id: str | None = None
    private_metadata: str | None = None
    app_installed_team_id: str | None = None
    team_id: str | None = None
    hash: str | None = None
    state: ViewState | None = None


class Interaction(_Common):
    type: str
    user: IdRef  # type: ignore[assignment]  # interactions always name who acted
    channel: IdRef | None = None  # type: ignore[assignment]
    container: dict[str, Any] | None = None
    message: Message | None = None
    previous_message: Message | None = None
    view: View | None = None
    #: Legacy attachment actions (``interactive_message``) have no ``action_id``.
    actions: list[dict[str, Any]] | None = None


class BlockActions(Interaction):
    actions: Annotated[list[Action], Field(min_length=1)]  # type: ignore[assignment]


class ViewCallback(Interaction):
    view: View


class SlashCommandBody(_Common):
    command: str
    user_id: str
    channel_id: str | None = None
    text: str | None = None


_BY_TYPE: dict[str, type[_Open]] = {
    "event_callback": EventCallback,
    "url_verification": UrlVerification,
    "block_actions": BlockActions,
    "block_suggestion": Interaction,
    "view_submission": ViewCallback,
    "view_closed": ViewCallback,
    "shortcut": Interaction,
    "message_action": Interaction,
    "interactive_message": Interaction,
    "dialog_submission": Interaction,
}


def envelope_problems(body: Any) -> list[dict[str, str]]:
    """What is wrong with a parsed Slack body, as ``{"loc", "msg"}`` items; ``[]`` if fine."""
    if not isinstance(body, dict):
        return [{"loc": "body", "msg": "expected a JSON object"}]
    kind = body.get("type")
    if "command" in body:
        model: type[_Open] = SlashCommandBody
    elif isinstance(kind, str):
        model = _BY_TYPE.get(kind, _Common)
    else:
        model = _Common
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [{"loc": ".".join(str(p) for p in err["loc"]) or "body", "msg": err["msg"]}
                for err in exc.errors(include_url=False, include_input=False)][:10]
    return []
