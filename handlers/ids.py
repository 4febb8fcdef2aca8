"""Action ids, callback ids and button values: one place, string enums."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.errors import InvalidInput


class CardAction(StrEnum):
    CLAIM = "card.claim"
    UNCLAIM = "card.unclaim"
    OPEN_LINK = "card.open_link"


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
