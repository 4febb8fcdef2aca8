"""Read mentions from CSV, JSONL or JSON files, row by row, keeping every problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.csvrows import dict_rows
from bot.domain import MentionIn
from bot.errors import InvalidInput
from bot.services.ingest import MentionPayload


def read_rows(path: Path) -> list[tuple[int | str, Any]]:
    """(where, row) pairs from a ``.csv``, ``.jsonl``/``.ndjson`` or ``.json`` file.

    ``where`` is a line number, or ``"item N"`` for an element of a JSON list.
    Files are UTF-8, with or without a byte order mark (Windows tools write one).

    Raises:
        InvalidInput: an unknown file type, a file that is not UTF-8, or a CSV quote
            left open (the message names the line).
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise InvalidInput(f"{path.name}: expected a .csv, .jsonl or .json file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name}: not UTF-8 (byte {exc.start + 1} of the file); "
                           f"save it as UTF-8 (Excel: \"CSV UTF-8\") and import again") from None
    if suffix == ".csv":
        return list(dict_rows(text, name=path.name)[0])
    if suffix == ".json":
        # A JSON document — one mention or a list, like a ``POST /ingest`` body —
        # or, as before, one mention per line.
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(document, list):
                return [(f"item {number}", row) for number, row in enumerate(document, 1)]
            return [(1, document)]
    rows: list[tuple[int | str, Any]] = []
    # Split at line feeds only: JSON strings may hold U+2028 and friends unescaped,
    # which str.splitlines() would break on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append((number, ValueError(f"not valid JSON: {exc.msg}")))
        except RecursionError:
            rows.append((number, ValueError("not valid JSON: nested too deeply")))
    return rows


def _where(where: int | str) -> str:
    return f"line {where}" if isinstance(where, int) else where


def read_mentions(path: Path) -> tuple[list[MentionIn], list[str]]:
    """Valid mentions and a readable problem per invalid row (``line N: field: msg``)."""
    items: list[MentionIn] = []
    problems: list[str] = []
    for number, row in read_rows(path):
        where = _where(number)
        if isinstance(row, Exception):
            problems.append(f"{where}: {row}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected an object")
            continue
        cleaned = {k: v for k, v in row.items() if k is not None and v not in ("", None)}
        try:
            items.append(MentionPayload.model_validate(cleaned).to_domain())
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(p) for p in err["loc"]) or "row"
                problems.append(f"{where}: {loc}: {err['msg']}")
    return items, problems
