"""The hashed character n-gram featuriser: its per-word cache must not change a feature."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bot.classify.lexical import N_FEATURES, NGRAM_RANGE, Lexical, ngram_ids, normalise


def reference_ngram_ids(text: str) -> np.ndarray:
    """``char_wb`` n-grams of each space-padded word, CRC-32 hashed, without any cache."""
    low, high = NGRAM_RANGE
    ids = []
    for word in normalise(text).split():
        padded = f" {word} ".encode()
        for n in range(low, min(high, len(padded)) + 1):
            ids += [zlib.crc32(padded[i : i + n]) for i in range(len(padded) - n + 1)]
    return np.asarray(ids, dtype=np.int64) % N_FEATURES


TEXTS = [
    "",
    "   ",
    "a",
    "@AmericanAir my bag is lost lost lost http://t.co/x1 😡",
    "Mein Laptop startet nicht — Hilfe!",
    "Спасибо, всё работает",
    "lost",
]


@pytest.mark.parametrize("text", TEXTS)
def test_ngram_ids_match_the_uncached_definition(text: str) -> None:
    for _ in range(2):  # the second call is served from the word cache
        got = ngram_ids(text)
        assert got.dtype == np.int64
        assert np.array_equal(got, reference_ngram_ids(text))


def test_a_caller_cannot_corrupt_the_cache() -> None:
    ids = ngram_ids("refund refund")
    ids[:] = 0  # the caller's own array
    assert np.array_equal(ngram_ids("refund refund"), reference_ngram_ids("refund refund"))
    rows = Lexical.fit(TEXTS).transform(["refund please", "refund"])
    assert len(rows) == 2 and rows.indices.max() < N_FEATURES
