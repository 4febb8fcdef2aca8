"""Ingest bodies: one mention or a list, validated field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from bot.domain import MentionIn, language_subtag
from bot.errors import InvalidInput

MAX_BATCH = 1000
MAX_TEXT = 40_000
#: The database column is a 32-bit integer on PostgreSQL.
MAX_REACH = 2**31 - 1

Str = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class MentionPayload(BaseModel):
    """One mention as POSTed to ``/ingest`` or read from an import file."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    source: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        validation_alias=AliasChoices("external_id", "id")
    )
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
    author: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        validation_alias=AliasChoices("author", "author_handle")
    )
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    author_reach: Annotated[int, Field(ge=0, le=MAX_REACH)] | None = Field(
        default=None, validation_alias=AliasChoices("author_reach", "followers", "reach")
    )
    lang: Annotated[str, StringConstraints(min_length=2, max_length=16)] | None = None
    published_at: datetime | None = None

    @field_validator("source", "external_id", "text", "author", "url", "lang", mode="after")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail at insert.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value

    @field_validator("author")
    @classmethod
    def _bare_handle(cls, value: str) -> str:
        # Cards, digests and the App Home write "@handle"; a source that sends "@jana"
        # would show "@@jana". Watch lists already match handles without the "@".
        handle = value.lstrip("@").strip()
        if not handle:
            raise ValueError("must be a handle or name, not only '@'")
        return handle

    @field_validator("external_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("published_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range once converted to UTC") from None

    def to_domain(self) -> MentionIn:
        return MentionIn(
            source=self.source,
            external_id=self.external_id,
            text=self.text,
            author=self.author,
            url=self.url,
            author_reach=self.author_reach,
            lang=language_subtag(self.lang),  # "en-US", "pt_BR": counted as en, pt
            published_at=self.published_at,
        )


_LIST = TypeAdapter(list[MentionPayload])


def parse_ingest_body(body: bytes | str) -> list[MentionIn]:
    """Parse a JSON ingest body (one mention object or a list of them).

    Raises:
        InvalidInput: with ``.errors``, a list of ``{"loc", "msg"}`` for every bad field.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid([("body", f"not valid JSON: {exc}")]) from None
    except RecursionError:  # e.g. 200 kB of "[": valid-looking, too deep for the parser
        raise _invalid([("body", "not valid JSON: nested too deeply")]) from None
    if isinstance(data, dict):
        items = [data]
        single = True
    elif isinstance(data, list):
        if not data:
            raise _invalid([("body", "the list of mentions is empty")])
        if len(data) > MAX_BATCH:
            raise _invalid([("body", f"at most {MAX_BATCH} mentions per request")])
        items = data
        single = False
    else:
        raise _invalid([("body", "expected a mention object or a list of mention objects")])
    try:
        parsed = _LIST.validate_python(items)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = [str(p) for p in err["loc"]]
            if single:
                loc = loc[1:]
            problems.append((".".join(loc) or "body", err["msg"]))
        raise _invalid(problems) from None
    return [item.to_domain() for item in parsed]


def _invalid(problems: list[tuple[str, str]]) -> InvalidInput:
    invalid = InvalidInput("; ".join(f"{loc}: {msg}" for loc, msg in problems))
    invalid.errors = [{"loc": loc, "msg": msg} for loc, msg in problems]  # type: ignore[attr-defined]
    return invalid
