"""Read mentions from CSV or JSONL files, row by row, keeping every problem."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.domain import MentionIn
from bot.errors import InvalidInput
from bot.services.ingest import MentionPayload


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """(line number, row) pairs from a ``.csv`` or ``.jsonl``/``.ndjson`` file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            return [(reader.line_num, dict(row)) for row in reader]
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows: list[tuple[int, Any]] = []
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    rows.append((number, ValueError(f"not valid JSON: {exc.msg}")))
        return rows
    raise InvalidInput(f"{path.name}: expected a .csv or .jsonl file")


def read_mentions(path: Path) -> tuple[list[MentionIn], list[str]]:
    """Valid mentions and a readable problem per invalid row (``line N: field: msg``)."""
    items: list[MentionIn] = []
    problems: list[str] = []
    for number, row in read_rows(path):
        if isinstance(row, Exception):
            problems.append(f"line {number}: {row}")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {number}: expected an object")
            continue
        cleaned = {k: v for k, v in row.items() if k is not None and v not in ("", None)}
        try:
            items.append(MentionPayload.model_validate(cleaned).to_domain())
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(p) for p in err["loc"]) or "row"
                problems.append(f"line {number}: {loc}: {err['msg']}")
    return items, problems
