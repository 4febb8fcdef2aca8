"""Rows in and out of ``carebot classify`` and ``carebot eval``: CSV, TSV or JSONL
by the file's extension, read strictly (errors name the file and line)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, overload

import click

from bot.csvrows import dict_rows
from bot.errors import InvalidInput

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
TSV_SUFFIXES = (".tsv", ".tab")


def delimiter_for(path: Path) -> str:
    return "\t" if path.suffix.lower() in TSV_SUFFIXES else ","


@overload
def read_rows(
    path: Path, *, raw: Literal[False] = False
) -> tuple[list[dict[str, str]], list[str]]: ...
@overload
def read_rows(path: Path, *, raw: Literal[True]) -> tuple[list[dict[str, Any]], list[str]]: ...
def read_rows(path: Path, *, raw: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and column names of a CSV, TSV or JSONL file, by extension
    (``.jsonl``/``.json``/``.ndjson``, ``.tsv``/``.tab``, anything else CSV).

    Values are strings: a JSON number, boolean, list or object as its JSON text, ``null``
    as ``""``. With ``raw`` a JSONL row keeps the values JSON gave it (for writing them
    back as they were).

    Raises:
        click.BadParameter: the file is not UTF-8, a JSONL line is not a JSON object,
            or a CSV quote is left open (the message names the line).
    """
    try:
        text = path.read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"{path.name} is not UTF-8 text (byte {exc.start})", param_hint="INFILE"
        ) from None
    if path.suffix.lower() in JSONL_SUFFIXES:
        rows: list[dict[str, Any]] = []
        for where, row in _json_rows(text, path.suffix.lower() == ".json"):
            if isinstance(row, Exception):
                raise click.BadParameter(
                    f"{path.name} {where} is not valid JSON ({row})", param_hint="INFILE"
                )
            if not isinstance(row, dict):
                raise click.BadParameter(
                    f"{path.name} {where} is not a JSON object", param_hint="INFILE"
                )
            rows.append(row)
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        if raw:
            return rows, columns
        return [{k: cell(r.get(k)) for k in columns} for r in rows], columns
    try:
        rows_csv, columns = dict_rows(text, name=path.name, delimiter=delimiter_for(path))
    except InvalidInput as exc:
        raise click.BadParameter(str(exc), param_hint="INFILE") from None
    return [row for _, row in rows_csv], columns


def _json_rows(text: str, document: bool) -> Iterator[tuple[str, Any]]:
    """(where, value or the reason it is not JSON) for each row of JSONL ``text``; with
    ``document`` (a ``.json`` file), a whole-file JSON list is its rows and a whole-file
    object one row, as for ``carebot import``."""
    if document:
        try:
            values = json.loads(text)
        except (ValueError, RecursionError):
            pass  # one object a line, or broken: read line by line, which names the line
        else:
            if isinstance(values, list):
                yield from ((f"item {n}", v) for n, v in enumerate(values, start=1))
                return
            if isinstance(values, dict):
                yield "document", values
                return
    # Split at line feeds only: JSON strings may hold U+2028, U+2029 or NEL unescaped
    # (json.dumps with ensure_ascii=False writes them so), where str.splitlines() breaks.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}", ValueError(exc.msg)
        except RecursionError:
            yield f"line {number}", ValueError("nested too deeply")


def cell(value: Any) -> str:
    """A value as text for a CSV cell: strings as they are, ``None`` empty, any other JSON
    value as its JSON text (``true``, ``17``, ``{"a": 1}``), never a Python repr."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def shown_columns(columns: list[str]) -> str:
    """The columns read, for an error: a header that did not split says so."""
    if len(columns) == 1 and ("\t" in columns[0] or "," in columns[0]):
        return (f"the header read as one, {columns[0]!r}: "
                "does the file's extension name its delimiter?")
    return ", ".join(f"`{c}`" for c in columns) or "none"


def render_rows(
    rows: list[dict[str, Any]], header: list[str], jsonl: bool, delimiter: str = ","
) -> str:
    if jsonl:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", delimiter=delimiter)
    writer.writeheader()
    writer.writerows({k: cell(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()
