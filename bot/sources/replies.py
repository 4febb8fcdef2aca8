"""Reply back where the mention was found (the Respond action calls this).

    if reply_capable(config, mention.source):
        url = send_reply(config, source=mention.source, external_id=mention.external_id,
                         url=mention.url, author=mention.author, text=answer)

Mastodon, Bluesky, Reddit and Discourse sources can reply when their
credentials are configured; the others (feeds, Hacker News, Stack Exchange,
App Store, the ingest webhook) cannot.

A reply longer than the platform takes is refused by :func:`check_reply` before
anything is sent, and an answer to a post that is gone (deleted) is
``NotAllowed``, so the reply becomes copy-ready text at once instead of being
retried for hours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import httpx
import regex

from bot.config import CareConfig
from bot.errors import ConfigError, Gone, InvalidInput, NotAllowed
from bot.sources.base import MentionRef
from bot.sources.registry import build_source, find_source_config

REPLY_TYPES = ("mastodon", "bluesky", "reddit", "discourse")

#: The longest reply each platform takes (Mastodon's and Discourse's defaults;
#: Mastodon and Bluesky count user-perceived characters, Reddit and Discourse
#: characters).
REPLY_LIMITS = {"mastodon": 500, "bluesky": 300, "reddit": 10000, "discourse": 32000}
#: Mastodon counts every link as 23 characters and a remote @user@domain as @user.
MASTODON_URL_RE = re.compile(r"https?://\S+")
MASTODON_REMOTE_RE = re.compile(r"(@\w+)@[\w.-]*\w")
MASTODON_URL_LENGTH = 23


def _graphemes(text: str) -> int:
    """User-perceived characters (extended grapheme clusters, Unicode's rule, as the
    platforms count them): a flag, a family emoji, a letter with its accent is one."""
    return len(regex.findall(r"\X", text))


def _mastodon_text(text: str, author: str | None) -> str:
    """The status :class:`~bot.sources.mastodon.MastodonSource` posts (it adds the @-mention)."""
    return f"@{author} {text}" if author and f"@{author}" not in text else text


def reply_length(source_type: str, text: str, author: str | None = None) -> int:
    """How long ``text`` is as a reply on ``source_type``, counted the platform's way."""
    if source_type == "mastodon":
        status = MASTODON_URL_RE.sub("x" * MASTODON_URL_LENGTH, _mastodon_text(text, author))
        return _graphemes(MASTODON_REMOTE_RE.sub(r"\1", status))
    if source_type == "bluesky":
        return _graphemes(text)
    return len(text)


def check_reply(config: CareConfig, *, source: str, text: str,
                author: str | None = None) -> None:
    """Refuse a reply ``source`` would not take, before anything is sent.

    Raises:
        InvalidInput: the text is empty, or longer than the platform allows
            (the message names the limit and the length).
    """
    text = text.strip()
    if not text:
        raise InvalidInput("The reply is empty.")
    source_config = find_source_config(config, source)
    if source_config is None or source_config.type not in REPLY_LIMITS:
        return
    limit = REPLY_LIMITS[source_config.type]
    length = reply_length(source_config.type, text, author)
    if length > limit:
        mention = " (with the @-mention carebot adds)" if source_config.type == "mastodon" \
            else ""
        raise InvalidInput(f"{source_config.type.capitalize()} takes replies of up to {limit} "
                           f"characters; this one is {length}{mention}. Please shorten it.")


def reply_capable(config: CareConfig, source_name: str, *,
                  environ: Mapping[str, str] | None = None) -> bool:
    """True when mentions of ``source_name`` can be answered from carebot."""
    source = find_source_config(config, source_name)
    if source is None or source.type not in REPLY_TYPES:
        return False
    try:
        connector = build_source(config, source, environ=environ)
    except ConfigError:
        return False
    try:
        return connector.can_reply()
    finally:
        connector.close()


def send_reply(config: CareConfig, *, source: str, external_id: str, text: str,
               url: str | None = None, author: str | None = None,
               environ: Mapping[str, str] | None = None,
               transport: httpx.BaseTransport | None = None) -> str:
    """Post ``text`` as a public reply to a mention; returns the reply's URL.

    Raises:
        InvalidInput: the text is empty or over the platform's limit (:func:`check_reply`).
        NotAllowed: the source cannot reply (unknown, no credentials, wrong type), or
            the post to answer is gone (retrying won't help).
        SourceUnavailable: the network answered with an error (message is safe to show).
    """
    check_reply(config, source=source, text=text, author=author)
    source_config = find_source_config(config, source)
    if source_config is None or source_config.type not in REPLY_TYPES:
        raise NotAllowed(f"Replies to {source} mentions cannot be sent from carebot.")
    connector = build_source(config, source_config,
                             environ=os.environ if environ is None else environ,
                             transport=transport)
    try:
        if not connector.can_reply():
            raise NotAllowed(f"{source} has no reply credentials configured.")
        return connector.reply(MentionRef(external_id=external_id, url=url, author=author),
                               text.strip())
    except Gone as exc:  # retrying cannot bring a deleted post back
        raise NotAllowed(f"The {source} post was deleted or can no longer be answered "
                         f"({exc}).") from None
    finally:
        connector.close()
