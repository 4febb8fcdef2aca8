"""bot.csvrows: the one CSV reader, strict about quotes, and counting records not lines."""

from __future__ import annotations

import pytest

from bot.csvrows import data_rows, dict_rows
from bot.errors import InvalidInput


def test_records_are_numbered_by_their_first_line_and_short_rows_read_empty() -> None:
    rows, columns = dict_rows('a,b\n1,"two\nlines"\n3\n', name="x.csv")
    assert columns == ["a", "b"]
    assert rows == [(2, {"a": "1", "b": "two\nlines"}), (4, {"a": "3", "b": ""})]
    assert data_rows('a,b\n1,"two\nlines"\n3,4\n') == 2 and data_rows("a,b\n") == 0


@pytest.mark.parametrize(("text", "message"), [
    ('a\n"open\nnever closed\n', "x.csv line 2: a quoted field opened here is never closed"),
    ('a\nfine\n"quoted" tail\n', "x.csv line 3: ',' expected after '\"'"),
    ('"a\n', "x.csv line 1: a quoted field opened here is never closed"),
])
def test_a_broken_quote_is_an_error_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        dict_rows(text, name="x.csv")
    assert str(caught.value).startswith(message)
