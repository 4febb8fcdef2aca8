"""Themes: group mention texts and label each group with its key terms.

Pure and deterministic. Texts are vectorised with an embedder when one is
given (``embed(texts) -> vectors``, e.g. the classification encoder), else with
TF-IDF over word unigrams and bigrams. Groups are formed by leader clustering
on cosine similarity: texts in a fixed order each join the most similar
existing group whose centroid is at least ``threshold`` similar, or start a
new one. Labels are always the group's top TF-IDF terms, so they read as the
customers' own words whatever the vectors were.

*Emerging terms* are terms much more frequent in the current texts than in a
baseline: at least ``min_count`` current mentions and a smoothed rate ratio
``(cur + 1) / (base_per_period + 1)`` of at least ``ratio``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Embedder = Callable[[Sequence[str]], Sequence[Sequence[float]]]

#: Function words of carebot's ten languages that never make a theme label.
STOPWORDS = frozenset("""
a an the and or but if of to in on at for from by with without about into over after
before is are was were be been being am do does did doing have has had having i me my
we our you your he she it its they them their this that these those there here what
which who whom why how when where all any both each few more most other some such no
nor not only own same so than too very can will just should now also get got im ive
dont cant wont isnt its it's i'm don't can't won't i've still again please really would
could one day today yesterday ever even much many just like new via rt amp
og i at er det en et den til på med for af som de har ikke jeg du vi
de het een en van is op te dat die niet ik je we met voor zijn maar
le la les un une des et est pas je tu il elle nous vous ils en du au aux pour sur avec
der die das und ist nicht ich du wir ihr ein eine mit für auf es zu den dem
il lo la gli le un una e non per con che di da mi ho è
o a os as um uma e não eu com para que de do da em é
el la los las un una y no yo con para que de en es por
och att det en ett är inte jag du vi med för på som
и в не на я что с по это как а но он она мы вы они
""".split())

#: Words, hashtags, and codes such as ``4012`` or ``e404`` (numbers under 3 digits are not terms).
TOKEN = re.compile(r"[#@]?(?:[^\W\d_][\w'’-]*|\d{3,}\w*)", re.UNICODE)


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().replace("’", "'")


def tokens(text: str, *, ignore: frozenset[str] = frozenset()) -> list[str]:
    """Content words of ``text`` (lowercase; no stopwords, mentions, links or ``ignore``)."""
    text = re.sub(r"https?://\S+", " ", normalise(text))
    words = []
    for word in TOKEN.findall(text):
        word = word.strip("'-")
        if word.startswith("@") or len(word) < 3 or word in STOPWORDS or word in ignore:
            continue
        words.append(word)
    return words


def terms(text: str, *, ignore: frozenset[str] = frozenset()) -> list[str]:
    """Unigrams and bigrams of content words."""
    words = tokens(text, ignore=ignore)
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


@dataclass(frozen=True, slots=True)
class Theme:
    """A group of texts: their indexes (input order) and label terms."""

    members: tuple[int, ...]
    label: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.members)


def tfidf(docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    """L2-normalised TF-IDF matrix (docs x vocabulary) and the vocabulary."""
    vocab = sorted({t for doc in docs for t in doc})
    index = {t: i for i, t in enumerate(vocab)}
    matrix = np.zeros((len(docs), len(vocab)), dtype=np.float64)
    df = Counter(t for doc in docs for t in set(doc))
    n = len(docs)
    for row, doc in enumerate(docs):
        for term, tf in Counter(doc).items():
            matrix[row, index[term]] = (1.0 + math.log(tf)) * (math.log((1 + n) / (1 + df[term]))
                                                               + 1.0)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms, vocab


def cluster(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Leader clustering by cosine similarity (rows must be L2-normalised)."""
    groups: list[list[int]] = []
    sums: list[np.ndarray] = []
    for i, vector in enumerate(vectors):
        best, best_sim = -1, threshold
        for g, total in enumerate(sums):
            norm = float(np.linalg.norm(total))
            sim = float(vector @ total) / norm if norm else 0.0
            if sim >= best_sim:
                best, best_sim = g, sim
        if best < 0 or not vector.any():
            groups.append([i])
            sums.append(vector.copy())
        else:
            groups[best].append(i)
            sums[best] = sums[best] + vector
    return groups


def _normalised(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms  # type: ignore[no-any-return]


def find_themes(texts: Sequence[str], *, embed: Embedder | None = None,
                threshold: float | None = None, label_terms: int = 3, min_size: int = 2,
                ignore: Sequence[str] = ()) -> list[Theme]:
    """Group ``texts`` into themes, largest first (ties: earliest member first).

    Groups smaller than ``min_size`` are dropped: a theme is something several
    customers said. ``ignore`` lists words never used (e.g. the brand names).
    """
    if not texts:
        return []
    skip = frozenset(w.lower() for word in ignore for w in tokens(word)) | frozenset(
        w.lower().lstrip("#@") for w in ignore)
    docs = [terms(t, ignore=skip) for t in texts]
    weights, vocab = tfidf(docs)
    if embed is not None:
        vectors = _normalised(embed(list(texts)))
        groups = cluster(vectors, 0.85 if threshold is None else threshold)
    else:
        # Single words group texts (bigrams would split paraphrases); labels use both.
        words, _ = tfidf([tokens(t, ignore=skip) for t in texts])
        groups = cluster(words, 0.3 if threshold is None else threshold)
    themes = []
    for members in groups:
        if len(members) < min_size:
            continue
        themes.append(Theme(tuple(members), label_for(weights, vocab, members, docs,
                                                     label_terms)))
    themes.sort(key=lambda th: (-th.size, th.members[0]))
    return themes


def label_for(weights: np.ndarray, vocab: Sequence[str], members: Sequence[int],
              docs: Sequence[Sequence[str]], count: int) -> tuple[str, ...]:
    """Top terms of a group: used by the most members, a bigram before a single
    word on a tie, then the highest TF-IDF weight; no word appears twice.
    Beyond the first, a term must be used by at least half of the members."""
    if not vocab:
        return ()
    index = {t: i for i, t in enumerate(vocab)}
    used = Counter(t for i in members for t in set(docs[i]))
    weight = weights[list(members)].sum(axis=0)
    ranked = sorted(used, key=lambda t: (-used[t], -len(t.split()), -float(weight[index[t]]), t))
    label: list[str] = []
    seen: set[str] = set()
    for term in ranked:
        if len(label) == count or (label and used[term] * 2 < len(members)):
            break
        words = set(term.split())
        if words & seen:
            continue
        label.append(term)
        seen |= words
    return tuple(label)


@dataclass(frozen=True, slots=True)
class EmergingTerm:
    term: str
    count: int
    baseline: float
    ratio: float


def emerging_terms(current: Sequence[str], baseline: Sequence[str], *, baseline_periods: int,
                   min_count: int = 3, ratio: float = 3.0, limit: int = 5,
                   ignore: Sequence[str] = ()) -> list[EmergingTerm]:
    """Terms mentioned by far more texts now than usual (see the module docstring)."""
    skip = frozenset(w.lower().lstrip("#@") for w in ignore)
    now = Counter(t for text in current for t in set(terms(text, ignore=skip)))
    before = Counter(t for text in baseline for t in set(terms(text, ignore=skip)))
    periods = max(1, baseline_periods)
    found = []
    for term, count in now.items():
        if count < min_count:
            continue
        usual = before[term] / periods
        rise = (count + 1) / (usual + 1)
        if rise >= ratio:
            found.append(EmergingTerm(term, count, usual, rise))
    found.sort(key=lambda e: (-e.ratio, -e.count, e.term))
    # Drop a unigram when a bigram containing it is listed with the same count.
    kept: list[EmergingTerm] = []
    for e in found:
        if " " not in e.term and any(e.term in k.term.split() and k.count == e.count
                                     for k in found if " " in k.term):
            continue
        kept.append(e)
    return kept[:limit]
