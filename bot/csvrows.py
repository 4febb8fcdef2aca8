"""CSV and TSV rows that never silently swallow the rest of a file.

Python's ``csv`` module, left lenient, reads a quote that is opened and never closed
as one field running to the end of the file: a 10,000-row export with a stray quote
on row 5 becomes five rows and no error. Every CSV reader in carebot goes through
:func:`dict_rows`, which reads strictly and names the line where the broken record
starts.
"""

from __future__ import annotations

import csv
import io

from bot.errors import InvalidInput


def dict_rows(
    text: str, *, name: str, delimiter: str = ","
) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """(line where the record starts, row) pairs and the header's column names.

    A short row reads its missing fields as ``""``; fields beyond the header are dropped.
    A field may be as long as the text (the csv module's default limit, 128 KiB, would
    read a long but well-quoted field as an error).

    Raises:
        InvalidInput: a quote is left open, or a quoted field is followed by more text
            before the delimiter; the message names the file and the line.
    """
    # The whole text is in memory already: the field size limit protects nothing here.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, dict[str, str]]] = []
    start = 1  # the line the next record starts on
    try:
        columns = list(reader.fieldnames or [])
        start = reader.line_num + 1
        for row in reader:
            rows.append((start, {k: v or "" for k, v in row.items() if k is not None}))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            why = "a quoted field opened here is never closed"
        else:
            why = f"{exc} (a quote inside a quoted field must be doubled: \"\")"
        raise InvalidInput(f"{name} line {start}: {why}") from None
    return rows, columns


def data_rows(text: str) -> int:
    """Records under the header of CSV ``text`` (a quoted field may span lines)."""
    return max(0, sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1)
