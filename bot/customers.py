"""Customer data from outside carebot: a CSV export, or a CRM lookup hook.

CSV columns (header row required; extra columns are ignored)::

    customer_id,name,tier,handles
    C-1001,Acme Corp,platinum,"twitter:@acme_it reddit:acme dana_k"

``handles`` is a space-, comma- or semicolon-separated list of ``source:handle``
or bare ``handle`` (any source). Bad rows are reported and skipped; good rows
are imported.

The CRM hook is ``GET <url>?source=<source>&handle=<handle>`` answering
``{"customer_id": "...", "name": "...", "tier": "gold"}``, or 404 for "not a
customer". Failures are logged and treated as "unknown"; routing never waits
on a CRM that is down for longer than the configured timeout. ``find`` tells a
failure (``SourceUnavailable``) apart from "not a customer" (``None``), so the
caller can ask again once the CRM is back instead of caching "unknown".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.config import CustomerLookupConfig
from bot.csvrows import dict_rows
from bot.errors import InvalidInput, SourceUnavailable

log = logging.getLogger(__name__)

ANY_SOURCE = "*"
TIER_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
SPLIT_RE = re.compile(r"[\s,;]+")


@dataclass(frozen=True, slots=True)
class CustomerRow:
    external_id: str
    name: str | None
    tier: str | None
    handles: tuple[tuple[str, str], ...]


def parse_handles(raw: str) -> tuple[tuple[str, str], ...]:
    """``"twitter:@a b"`` -> ``(("twitter", "a"), ("*", "b"))``."""
    out: list[tuple[str, str]] = []
    for token in SPLIT_RE.split(raw.strip()):
        if not token:
            continue
        source, sep, handle = token.partition(":")
        if not sep:
            source, handle = ANY_SOURCE, token
        handle = handle.strip().lstrip("@").lower()
        if not handle or not source:
            raise ValueError(f"bad handle {token!r}")
        out.append((source.strip().lower(), handle))
    return tuple(out)


def read_customers_csv(path: Path) -> tuple[list[CustomerRow], list[str]]:
    """Parse a customers CSV. Returns (rows, problems); a problem names its line.

    Raises:
        InvalidInput: the file cannot be read, lacks the ``customer_id`` column, or
            leaves a quote open (the message names the line).
    """
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    records, columns = dict_rows(text, name=path.name)
    if "customer_id" not in {f.strip().lower() for f in columns}:
        raise InvalidInput(f"{path}: the header must name a customer_id column "
                           "(and usually name, tier, handles)")
    rows: list[CustomerRow] = []
    problems: list[str] = []
    for line, raw in records:
        record = {k.strip().lower(): v.strip() for k, v in raw.items()}
        external_id = record.get("customer_id", "")
        tier = record.get("tier", "").lower() or None
        if not external_id:
            problems.append(f"line {line}: customer_id is empty")
            continue
        if len(external_id) > 128:
            problems.append(f"line {line}: customer_id is longer than 128 characters")
            continue
        if tier is not None and not TIER_RE.match(tier):
            problems.append(f"line {line}: tier {tier!r} must be a short word like gold")
            continue
        try:
            handles = parse_handles(record.get("handles", ""))
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        rows.append(CustomerRow(external_id, record.get("name") or None, tier, handles))
    return rows, problems


class HttpCustomerLookup:
    """Asks the CRM who is behind a handle (see the module docstring)."""

    def __init__(self, config: CustomerLookupConfig,
                 transport: httpx.BaseTransport | None = None) -> None:
        if config.url is None:
            raise ValueError("customer_lookup.url is not set")
        self.url = config.url
        self.client = httpx.Client(timeout=config.timeout_seconds, transport=transport)

    def __call__(self, source: str, handle: str) -> CustomerRow | None:
        """The customer for a handle, or None (not a customer, or the CRM failed)."""
        try:
            return self.find(source, handle)
        except SourceUnavailable:
            return None

    def find(self, source: str, handle: str) -> CustomerRow | None:
        """The customer for a handle, or None when the CRM says it is not a customer.

        Raises:
            SourceUnavailable: the CRM did not answer (timeout, error status, not JSON).
        """
        try:
            resp = self.client.get(self.url, params={"source": source, "handle": handle})
            if resp.status_code == 404:
                return None
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            # The URL may carry a token: log the error type and status only.
            log.warning("customer lookup failed for %s: %s", source, type(exc).__name__)
            raise SourceUnavailable(f"customer lookup failed: {type(exc).__name__}") from None
        if not isinstance(data, dict) or not data.get("customer_id"):
            return None
        tier = str(data.get("tier") or "").lower() or None
        if tier is not None and not TIER_RE.match(tier):
            tier = None
        return CustomerRow(str(data["customer_id"])[:128], _opt(data.get("name")), tier,
                           ((source, handle.lstrip("@").lower()),))

    def close(self) -> None:
        self.client.close()


def _opt(value: object) -> str | None:
    return str(value)[:255] if value else None
