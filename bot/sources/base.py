"""The ``Source`` protocol and the HTTP plumbing every connector shares.

A connector answers two questions: which queries it polls (``queries()``),
and what one page of one query holds after a stored cursor (``fetch``). The
poller owns everything else — storing cursors, backoff, filtering, ingest.

Failures surface as :class:`~bot.errors.SourceUnavailable` (network, 5xx,
4xx, a body that is not the documented format) or its subclass
:class:`RateLimited` (429, with the server's ``Retry-After``). ``httpx``
errors are caught here, at the source boundary, and nowhere else. Error
messages name the host and path only — never a query string, which may carry a
key.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from bot.domain import MentionIn, language_subtag
from bot.errors import Gone, SourceUnavailable

USER_AGENT = "carebot/0.1 (social customer care; +https://github.com/carebot/carebot)"


class RateLimited(SourceUnavailable):
    """The source answered 429 (or its own throttle error).

    Attributes:
        retry_after: seconds the server asked us to wait, when it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Page:
    """One page of one query.

    Attributes:
        items: the mentions on the page, already mapped to the domain.
        cursor: the cursor to store once the items are safely ingested.
        more: fetch the next page now (the walk is not finished).
        wait_seconds: the server asked for a pause before the next request
            (Stack Exchange's ``backoff`` field); not a failure.
    """

    items: list[MentionIn]
    cursor: str | None
    more: bool = False
    wait_seconds: float | None = None


@dataclass(frozen=True)
class MentionRef:
    """What a reply needs to know about the mention it answers."""

    external_id: str
    url: str | None = None
    author: str | None = None


@runtime_checkable
class Source(Protocol):
    """A listening source: one configured connector instance."""

    name: str

    def queries(self) -> list[str]:
        """Stable keys of what this source polls (one durable cursor each)."""
        ...

    def fetch(self, query: str, cursor: str | None) -> Page:
        """The next page of ``query`` after ``cursor`` (``None``: start fresh)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ReplySource(Source, Protocol):
    """A source that can post a public reply with its configured credentials."""

    def can_reply(self) -> bool: ...

    def reply(self, mention: MentionRef, text: str) -> str:
        """Post ``text`` as a reply to ``mention``; returns the reply's URL."""
        ...


@dataclass
class HttpConnector:
    """Shared HTTP behaviour: one client, error mapping, JSON decoding."""

    name: str
    base_url: str
    timeout: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    transport: httpx.BaseTransport | None = None

    def __post_init__(self) -> None:
        self.client = httpx.Client(timeout=self.timeout, transport=self.transport,
                                   headers={"User-Agent": USER_AGENT, **self.headers},
                                   follow_redirects=True)

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def request(self, method: str, path: str, *, allow: tuple[int, ...] = (),
                **kwargs: Any) -> httpx.Response:
        """Send a request; map every failure to ``SourceUnavailable``/``RateLimited``.

        Statuses in ``allow`` are returned (APIs that explain errors in the body).
        """
        url = self.url(path)
        where = _where(url)
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise SourceUnavailable(f"{where}: timed out after {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"{where}: {type(exc).__name__}") from None
        if response.status_code == 429:
            raise RateLimited(f"{where}: HTTP 429 rate limited",
                              retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400 and response.status_code not in allow:
            error = Gone if response.status_code in (404, 410) else SourceUnavailable
            raise error(f"{where}: HTTP {response.status_code}")
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return decode_json(self.request("GET", path, **kwargs), _where(self.url(path)))


def decode_json(response: httpx.Response, where: str) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise SourceUnavailable(f"{where}: malformed body (not JSON)") from None


def malformed(where: str, what: str) -> SourceUnavailable:
    return SourceUnavailable(f"{where}: malformed body ({what})")


def _where(url: str) -> str:
    """Host (and port) and path of ``url`` for an error text: never the user and
    password a private feed's URL may carry, nor the query string (API keys)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}{parts.path}" if port else f"{host}{parts.path}"


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# -- cursors ------------------------------------------------------------------

def load_cursor(cursor: str | None) -> dict[str, Any]:
    """A stored cursor as a dict; an unreadable one starts fresh."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def dump_cursor(state: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in state.items() if v is not None}, sort_keys=True)


def newest_first(state: dict[str, Any], keyed: list[tuple[float, MentionIn]],
                 next_token: str | None) -> Page:
    """One step of a newest-first walk down to the last high-water mark.

    Listings and searches sorted newest first (Reddit, Bluesky, Hacker News,
    Stack Exchange, Discourse, App Store) are walked page by page until an item
    at or below ``hw`` — the newest item of the previous finished walk — or the
    end. Mid-walk the cursor holds the next page token, so a restart resumes
    the walk; the walk's newest item becomes the next ``hw``. Items equal to
    ``hw`` are handed over (another item may share its timestamp); the poller
    drops what it has already handled.
    The very first walk takes only the newest page rather than all history.
    """
    hw = state.get("hw")
    top = state.get("top")
    fresh = [item for key, item in keyed if hw is None or key >= hw]
    reached = hw is not None and any(key <= hw for key, _ in keyed)
    page_top = max((key for key, _ in keyed), default=None)
    if page_top is not None and (top is None or page_top > top):
        top = page_top
    if hw is None or reached or not next_token or not keyed:
        new_hw = top if top is not None else hw
        return Page(fresh, dump_cursor({"hw": new_hw}), more=False)
    return Page(fresh, dump_cursor({"hw": hw, "walk": next_token, "top": top}), more=True)


# -- text helpers --------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<\s*(br|p|/p|div|/div|li|/li|pre|/pre)\b[^>]*>", re.IGNORECASE)
_SPACE = re.compile(r"[ \t\r\f\v]+")


def html_to_text(value: str | None) -> str:
    """Plain text from an HTML fragment (Mastodon content, Stack Exchange bodies)."""
    if not value:
        return ""
    text = _BREAK.sub("\n", value)
    text = html.unescape(_TAG.sub("", text))
    lines = [_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line).strip()


def join_text(*parts: str | None) -> str:
    return "\n".join(p.strip() for p in parts if p and p.strip())


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from epoch seconds or an ISO 8601 string."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def epoch(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def short_key(value: str, limit: int = 200) -> str:
    """A query key that fits the 255-character column, stable across restarts."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha1(value.encode()).hexdigest()[:16]
    return f"{value[: limit - 17]}#{digest}"


#: Column limits of the ``mention`` table (``storage/tables.py``); PostgreSQL
#: enforces them, and its text columns cannot hold NUL at all.
MAX_ID = 255
MAX_AUTHOR = 255
MAX_URL = 2048
MAX_REACH = 2**31 - 1


def storable(item: MentionIn) -> MentionIn:
    """``item`` made fit for the mention table.

    What a source hands over is not validated like an ingest body, and one item
    the database refuses would fail its whole page on every poll: NULs are
    removed, surrogates (JSON ``\\ud83d`` escapes) joined into characters or, when
    lone — an emoji cut in half — replaced by U+FFFD, an overlong id shortened to
    a stable hashed key, an overlong author cut, an overlong URL dropped (a cut
    link is a broken link), and an out-of-range reach forgotten.
    """

    def clean(value: str) -> str:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value.replace("\x00", "")

    url = clean(item.url) if item.url else None
    reach = item.author_reach
    if isinstance(reach, bool) or not isinstance(reach, int) or not 0 <= reach <= MAX_REACH:
        reach = None
    return replace(
        item,
        external_id=short_key(clean(item.external_id), MAX_ID),
        text=clean(item.text).strip() or "(no text)",
        author=clean(item.author).strip()[:MAX_AUTHOR] or "unknown",
        url=url if url and len(url) <= MAX_URL else None,
        author_reach=reach,
        lang=clean(item.lang) or None if item.lang else None,
    )


def lang_code(value: Any) -> str | None:
    """The primary ISO 639-1 subtag of a language tag (``en-US`` -> ``en``)."""
    return language_subtag(value)
