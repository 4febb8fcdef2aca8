"""Character n-gram features read by the heads beside the sentence embedding.

A 118 M-parameter sentence encoder blurs the surface cues a reader uses to
tell a request for help from a rant ("how do I", "?!", "#fail", a product
name, a fare code). Sparse character n-grams keep them. The category head is
one logistic regression over ``[embedding, n-grams]``; on the calibration split
of the real tweets this lifted macro-F1 from 0.590 to 0.636 (docs/MODEL_CARD.md).
The sentiment head reads the embedding only (see ``train_heads``).

The n-grams are hashed (scikit-learn's ``HashingVectorizer``): there is no
vocabulary to ship or to drift, only the fitted IDF weights. Text is lowercased
and URLs and @handles are masked first, so the heads learn "someone was
mentioned", not which airline a training tweet happened to name.
"""

from __future__ import annotations

import re
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


def _hasher() -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=NGRAM_RANGE,
        n_features=N_FEATURES,
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )


def _counts(texts: Sequence[str]) -> Any:
    return _hasher().transform([normalise(t) for t in texts]).tocsr()


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
        counts = _counts(texts)
        df = np.bincount(counts.indices, minlength=N_FEATURES)
        idf = np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0
        return cls(idf.astype(np.float32))

    def transform(self, texts: Sequence[str]) -> Any:
        """``[len(texts), N_FEATURES]`` sparse CSR matrix."""
        from sklearn.preprocessing import normalize

        x = _counts(texts)
        x.data = (1.0 + np.log(x.data)) * self.idf[x.indices]
        return normalize(x, copy=False)
