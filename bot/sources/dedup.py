"""Fingerprints for deduplication across sources.

Two sources found the same mention when they give the same URL (after
normalising: scheme, ``www.``, tracking parameters, fragments and trailing
slashes do not count), or the same text from the same author (after
normalising case, accents, links, handles' ``@`` and domains, whitespace and
punctuation). Fingerprints are short hashes, so they index well.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit

from bot.domain import MentionIn

_TRACKING = re.compile(r"^(utm_\w+|ref|ref_src|ref_url|fbclid|gclid|igshid|s|si|share_id)$")
_URL = re.compile(r"https?://\S+")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
#: Handle suffixes that differ per network for the same person.
_HANDLE_SUFFIX = re.compile(r"(\.bsky\.social|@[\w.-]+\.\w+)$")


def _hash(value: str) -> str:
    return hashlib.sha1(value.encode("utf-8")).hexdigest()


def normalize_url(url: str) -> str:
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.").removeprefix("old.")
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                             if not _TRACKING.match(k.lower())))
    path = parts.path.rstrip("/") or "/"
    return f"{host}{path}" + (f"?{query}" if query else "")


def url_key(url: str | None) -> str | None:
    return _hash(normalize_url(url)) if url else None


def normalize_text(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = _URL.sub(" ", folded)
    return " ".join(_NON_WORD.sub(" ", folded).split())


def text_key(text: str) -> str:
    return _hash(normalize_text(text))


def author_key(author: str) -> str:
    name = author.strip().casefold().removeprefix("/u/").removeprefix("u/").lstrip("@")
    name = _HANDLE_SUFFIX.sub("", name)
    return name[:255]


def count_links(text: str) -> int:
    return len(_URL.findall(text))


def fingerprints(item: MentionIn) -> tuple[str | None, str, str]:
    """(url key, text key, author key) of a mention."""
    return url_key(item.url), text_key(item.text), author_key(item.author)
