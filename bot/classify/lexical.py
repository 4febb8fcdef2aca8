"""Character n-gram features read by the category head beside the sentence embedding.

A 118 M-parameter sentence encoder blurs the surface cues a reader uses to
tell a request for help from a rant ("how do I", "?!", "#fail", a product
name, a fare code). Sparse character n-grams keep them. The category head is
one logistic regression over ``[embedding, n-grams]``; on the calibration split
of the real tweets this lifted macro-F1 from 0.590 to 0.636 (docs/MODEL_CARD.md).
The sentiment head reads the embedding only (see ``train_heads``).

The n-grams are those of scikit-learn's ``char_wb`` analyser (2 to 5 characters,
inside space-padded words), hashed into ``N_FEATURES`` buckets with CRC-32: no
vocabulary to ship or to drift, only the fitted IDF weights, and inference needs
numpy alone. (scikit-learn's ``HashingVectorizer`` does the same, but importing
scikit-learn and SciPy into the serving process cost 88 MB of peak RSS.) Text
is lowercased and URLs and @handles are masked first, so the head learns
"someone was mentioned", not which airline a training tweet happened to name.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

N_FEATURES = 2**18
NGRAM_RANGE = (2, 5)

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"@\w+")


def normalise(text: str) -> str:
    """Lowercase, URLs -> ``http``, @handles -> ``@u``."""
    return _HANDLE.sub("@u", _URL.sub(" http ", text.lower()))


def ngram_ids(text: str) -> np.ndarray:
    """Hashed ``char_wb`` n-gram ids of one text (with repeats)."""
    words = normalise(text).split()
    if not words:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([_word_ngram_ids(word) for word in words]).astype(np.int64)


@functools.lru_cache(maxsize=16_384)
def _word_ngram_ids(word: str) -> np.ndarray:
    """The hashed n-grams of one space-padded word; words repeat, so they are cached
    (at most 16,384 words, a few MB)."""
    low, high = NGRAM_RANGE
    crc, ids = zlib.crc32, []
    padded = f" {word} ".encode()
    size = len(padded)
    for n in range(low, min(high, size) + 1):
        ids += [crc(padded[i : i + n]) % N_FEATURES for i in range(size - n + 1)]
    ids_array = np.asarray(ids, dtype=np.int32)
    ids_array.flags.writeable = False  # shared by every caller
    return ids_array


@dataclass(frozen=True)
class SparseRows:
    """A ``[n_rows, N_FEATURES]`` CSR matrix that needs no SciPy to multiply."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __matmul__(self, weight: np.ndarray) -> np.ndarray:
        """``self @ weight`` for a dense ``[N_FEATURES, k]`` weight."""
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        columns = [  # one class at a time: no [nnz, k] temporary
            np.bincount(rows, self.data * weight[self.indices, j], len(self))
            for j in range(weight.shape[1])
        ]
        return np.stack(columns, 1)

    def csr(self) -> Any:
        """The same matrix as ``scipy.sparse.csr_matrix`` (for training)."""
        from scipy import sparse

        return sparse.csr_matrix(
            (self.data, self.indices, self.indptr), shape=(len(self), N_FEATURES)
        )


def _counts(texts: Sequence[str]) -> SparseRows:
    indptr, indices, data = [0], [], []
    for text in texts:
        ids, counts = np.unique(ngram_ids(text), return_counts=True)
        indices.append(ids)
        data.append(counts.astype(np.float32))
        indptr.append(indptr[-1] + len(ids))
    return SparseRows(
        np.asarray(indptr, dtype=np.int64),
        np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
        np.concatenate(data) if data else np.zeros(0, dtype=np.float32),
    )


@dataclass
class Lexical:
    """Hashed character n-grams, TF-IDF weighted (sublinear tf), rows L2-normalised.

    Attributes:
        idf: ``[N_FEATURES]`` inverse document frequency, fitted on training texts.
    """

    idf: np.ndarray

    @classmethod
    def fit(cls, texts: Sequence[str]) -> Lexical:
        """IDF as scikit-learn computes it (smoothed): ``ln((1 + n) / (1 + df)) + 1``."""
        df = np.bincount(_counts(texts).indices, minlength=N_FEATURES)
        idf = np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0
        return cls(idf.astype(np.float32))

    def transform(self, texts: Sequence[str]) -> SparseRows:
        """TF-IDF rows of ``texts`` (a row without any n-gram stays all zero)."""
        counts = _counts(texts)
        data = (1.0 + np.log(counts.data)) * self.idf[counts.indices]
        rows = np.repeat(np.arange(len(counts)), np.diff(counts.indptr))
        norms = np.sqrt(np.bincount(rows, data * data, len(counts)))
        data = data / np.where(norms > 0, norms, 1.0)[rows]
        return SparseRows(counts.indptr, counts.indices, data.astype(np.float32))
