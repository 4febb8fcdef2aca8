"""Reply back where the mention was found (the Respond action calls this).

    if reply_capable(config, mention.source):
        url = send_reply(config, source=mention.source, external_id=mention.external_id,
                         url=mention.url, author=mention.author, text=answer)

Mastodon, Bluesky, Reddit and Discourse sources can reply when their
credentials are configured; the others (feeds, Hacker News, Stack Exchange,
App Store, the ingest webhook) cannot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from bot.config import CareConfig
from bot.errors import ConfigError, InvalidInput, NotAllowed
from bot.sources.base import MentionRef
from bot.sources.registry import build_source, find_source_config

REPLY_TYPES = ("mastodon", "bluesky", "reddit", "discourse")


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
        InvalidInput: the text is empty.
        NotAllowed: the source cannot reply (unknown, no credentials, wrong type).
        SourceUnavailable: the network answered with an error (message is safe to show).
    """
    if not text.strip():
        raise InvalidInput("The reply is empty.")
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
    finally:
        connector.close()
