"""Log lines as text or JSON, with secrets redacted from every message and traceback.

``configure_logging`` installs one root handler (uvicorn, Bolt, slack_sdk and
carebot all propagate to it). The redaction is a handler filter, so it sees
every record whichever logger emitted it: the configured secret values, any
Slack token (``xoxb-``/``xoxp-``/``xoxa-``/``xoxr-``/``xapp-``), ``Bearer``
credentials, the password in a URL (or a bare ``user:password@host``) and
credential-named query parameters of any URL (``?key=``, ``&access_token=``) are
replaced by ``[REDACTED]`` in the message, its arguments, the exception text and the
stack.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

REDACTED = "[REDACTED]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: Secrets recognisable by their shape, whoever logs them.
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[^\s'\",;]+"), rf"\1 {REDACTED}"),
    # scheme://user:password@host -> scheme://user:[REDACTED]@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(@)"), rf"\1{REDACTED}\2"),
    # user:password@host without the scheme (a URL's netloc, as error texts name a host)
    (re.compile(r"(?<![\w/.%+:-])([\w.~%+-]+:)[^@\s/:]+(@[\w-]+(?:\.[\w-]+)*)"),
     rf"\1{REDACTED}\2"),
    # Credentials in a URL's query string (?key=…, &access_token=…), as httpx writes
    # them in its request log lines and exception texts: a source's API key, a webhook
    # token. Their values are not known secrets: the configuration names only env vars.
    (re.compile(r"(?i)([?&;#][a-z0-9_.-]*?(?:key|token|secret|password|passwd|pwd|sig"
                r"|signature|auth|credentials?)=)[^&#\s'\"<>]+"), rf"\1{REDACTED}"),
)

#: Loggers that may have been given handlers of their own before ours.
OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "slack_bolt.App")

#: Record attributes that are not "extra" fields passed by the caller.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class Redactor:
    """Replaces known secret values and secret-shaped strings in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole;
        # very short values would redact ordinary words, so they are left to the patterns.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """Redacts each record in place (message, exception and stack text); never drops one."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, exception, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_handler(*, fmt: LogFormat = "text", secrets: Iterable[str | None] = (),
                 stream: Any = None) -> logging.Handler:
    """A stream handler with the chosen format and the redacting filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter(Redactor(secrets)))
    return handler


def configure_logging(*, level: str = "INFO", fmt: LogFormat = "text",
                      secrets: Iterable[str | None] = ()) -> logging.Handler:
    """Send every log record through one redacting handler on the root logger."""
    handler = make_handler(fmt=fmt, secrets=secrets)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Servers that install their own handlers (uvicorn's default config) would
    # print around the redaction: route them to the root handler instead.
    for name in OWN_HANDLERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
