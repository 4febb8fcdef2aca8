"""Action ids, callback ids and button values: one place, string enums."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.errors import InvalidInput


class CardAction(StrEnum):
    CLAIM = "card.claim"
    UNCLAIM = "card.unclaim"
    OPEN_LINK = "card.open_link"
    RESPOND = "card.respond"
    CONFIRM_RESPONDED = "card.confirm_responded"
    ESCALATE = "card.escalate"
    RESOLVE = "card.resolve"
    REOPEN = "card.reopen"
    NOTE = "card.note"
    RECLASSIFY = "card.reclassify"
    MORE = "card.more"  # the overflow menu; the option's value says which action
    REVIEW = "review.open"  # the button in the after-action review DM


class MoreAction(StrEnum):
    """The card's overflow menu: less frequent actions."""

    CONVERSION = "conversion"
    RECLASSIFY = "reclassify"
    NOISE = "noise"
    STAR = "star"
    KB = "kb"


class ModalCallback(StrEnum):
    RESPOND = "modal.respond"
    ESCALATE = "modal.escalate"
    CONVERSION = "modal.conversion"
    RECLASSIFY = "modal.reclassify"
    NOTE = "modal.note"
    REVIEW = "modal.review"


class SlashCommand(StrEnum):
    CARE = "/care"


#: Every slash command the app registers (the manifest test compares with it).
SLASH_COMMANDS: tuple[str, ...] = tuple(c.value for c in SlashCommand)


class CardRef(BaseModel):
    """The value carried by every card button: which mention it acts on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    m: int

    @classmethod
    def parse(cls, raw: str | None) -> CardRef:
        try:
            return cls.model_validate_json(raw or "")
        except ValidationError:
            raise InvalidInput("This button is from an unknown card.") from None

    def dump(self) -> str:
        return self.model_dump_json()


class MoreRef(BaseModel):
    """The value of an overflow option: which mention, which action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    m: int
    a: MoreAction

    @classmethod
    def parse(cls, raw: str | None) -> MoreRef:
        try:
            return cls.model_validate_json(raw or "")
        except ValidationError:
            raise InvalidInput("This menu is from an unknown card.") from None

    def dump(self) -> str:
        return self.model_dump_json()


class ModalRef(BaseModel):
    """A modal's ``private_metadata``: the mention, the card's channel, the escalation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    m: int
    c: str | None = None
    e: int | None = None

    @classmethod
    def parse(cls, raw: str | None) -> ModalRef:
        try:
            return cls.model_validate_json(raw or "")
        except ValidationError:
            raise InvalidInput("This form is from an unknown card.") from None

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)
