"""Checks behind the configuration's error messages: Slack ids where ids belong,
placeholder and wrong-kind secrets, and validation errors written as one line that
names the setting (and, for a misspelt key, the key meant)."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

PLACEHOLDERS = {"changeme", "change-me", "xoxb-your-token", "secret", "todo", "xxx"}
#: What an example value in the docs looks like: ``xoxb-…``, ``your-signing-secret``,
#: ``<token>``, or a shell substitution pasted into ``.env`` (which no shell expands).
PLACEHOLDER_RE = re.compile(r"…|\.\.\.|^<.*>$|^\$|\byour[-_ ]")
#: The kind of Slack token each setting takes, by prefix.
TOKEN_PREFIXES = {"slack_bot_token": ("xoxb-", "the Bot User OAuth Token"),
                  "slack_app_token": ("xapp-", "an app-level token")}


def is_placeholder(value: str) -> bool:
    """True for a value copied from an example rather than from Slack or a generator."""
    value = value.strip().lower()
    bare = re.sub(r"^x(?:oxb|oxp|app)-", "", value)
    return (value in PLACEHOLDERS or bare in PLACEHOLDERS or bare in ("", "token")
            or PLACEHOLDER_RE.search(value) is not None)


CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]+$")
USER_ID_RE = re.compile(r"^[UW][A-Z0-9]+$")
GROUP_ID_RE = re.compile(r"^S[A-Z0-9]+$")


def _slack_id(pattern: re.Pattern[str], problem: Callable[[str], str]) -> AfterValidator:
    """A validator keeping a value (stripped) that matches ``pattern``; otherwise a
    ``ValueError`` saying ``problem(value)``."""
    def check(value: str) -> str:
        value = value.strip()
        if not pattern.match(value):
            raise ValueError(problem(value))
        return value

    return AfterValidator(check)


def _not_a_channel(value: str) -> str:
    what = "a channel name" if value.startswith("#") else "not a Slack channel id"
    return (f"{value!r} is {what}; give the channel id (like C0123ABCD), shown "
            "at the bottom of the channel's details in Slack")


#: A Slack channel id (``C…``, ``G…`` for older private channels, ``D…``), never a ``#name``.
ChannelId = Annotated[str, _slack_id(CHANNEL_ID_RE, _not_a_channel)]
#: A Slack user id (``U…``/``W…``), never a ``@name``.
UserId = Annotated[str, _slack_id(USER_ID_RE, lambda v: (
    f"{v!r} is not a Slack user id; give the member id (like "
    "U0123ABCD): profile → ⋯ → Copy member ID"))]
#: A Slack user group id (``S…``).
GroupId = Annotated[str, _slack_id(GROUP_ID_RE, lambda v: (
    f"{v!r} is not a Slack user group id (like S0123ABCD)"))]


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: where, and what is wrong there."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def describe(exc: ValidationError, *, upper: bool = False,
              model: type[BaseModel] | None = None) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and model is not None:
            message = _unknown_key(error["loc"], model)
        if loc:
            message = f"{loc.upper() if upper else loc}: {message}"
        parts.append(message)
    return "; ".join(parts)


def _unknown_key(loc: Sequence[int | str], model: type[BaseModel]) -> str:
    """"unknown key", with the key most likely meant (a typo) or the keys allowed there."""
    known = _keys_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.75)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    if known and len(known) <= 12:
        return "unknown key; expected one of " + ", ".join(f"`{k}`" for k in sorted(known))
    return "unknown key"


def _keys_at(model: type[BaseModel], path: Sequence[int | str]) -> list[str]:
    """The field names of the model found at ``path`` below ``model`` ([] if none is)."""
    annotation: Any = model
    for part in path:
        annotation = _single_type(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        else:  # a list item or a dict value
            args = get_args(annotation)
            if not args:
                return []
            annotation = args[-1]
    annotation = _single_type(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _single_type(annotation: Any) -> Any:
    """``X`` for ``X | None`` and ``Annotated[X, ...]``; unions of several types stay."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation
