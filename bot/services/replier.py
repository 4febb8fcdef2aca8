"""Replying to a mention where it was posted.

The Respond action needs only this small interface. Sources that can reply
(and have credentials) implement it in ``bot/sources/replies.py``; until then,
or for sources that cannot, carebot shows copy-ready text and the staff member
confirms they responded.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from bot.config import CareConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """The mention a reply answers."""

    mention_id: int
    source: str
    external_id: str
    url: str | None
    author: str


class Replier(Protocol):
    def capable(self, source: str) -> bool:
        """True when carebot can post replies to ``source`` (support and credentials)."""
        ...

    def send(self, target: ReplyTarget, text: str) -> str | None:
        """Post ``text`` as a reply; return the reply's id at the source, if any.

        Raises:
            SourceUnavailable: the source failed; the reply is retried later.
        """
        ...


def check_reply(replier: Replier, target: ReplyTarget, text: str) -> None:
    """Refuse, before it is queued, a reply the source would not take (too long).

    Repliers may implement ``check(target, text)``; one that does not accepts anything.

    Raises:
        InvalidInput: the reply does not fit the platform (the message says why).
    """
    check = getattr(replier, "check", None)
    if check is not None:
        check(target, text)


class NoReplier:
    """Replies through no source: every reply is copy-ready text."""

    def capable(self, source: str) -> bool:
        return False

    def send(self, target: ReplyTarget, text: str) -> str | None:  # pragma: no cover
        raise NotImplementedError("NoReplier sends nothing")


class SourcesReplier:
    """Adapter over ``bot.sources.replies`` (``reply_capable`` / ``send_reply``)."""

    def __init__(self, module: Any, config: CareConfig) -> None:
        self.module = module
        self.config = config

    def capable(self, source: str) -> bool:
        return bool(self.module.reply_capable(self.config, source))

    def check(self, target: ReplyTarget, text: str) -> None:
        check = getattr(self.module, "check_reply", None)
        if check is not None:
            check(self.config, source=target.source, text=text, author=target.author)

    def send(self, target: ReplyTarget, text: str) -> str | None:
        result = self.module.send_reply(self.config, source=target.source,
                                        external_id=target.external_id, text=text,
                                        url=target.url, author=target.author)
        return None if result is None else str(result)


def default_replier(config: CareConfig) -> Replier:
    """The sources' replier when that module exists, else copy-ready text only."""
    try:
        module = importlib.import_module("bot.sources.replies")
    except ImportError:
        return NoReplier()
    if not (hasattr(module, "reply_capable") and hasattr(module, "send_reply")):
        log.warning("bot.sources.replies lacks reply_capable/send_reply; replies are copy-ready")
        return NoReplier()
    return SourcesReplier(module, config)
