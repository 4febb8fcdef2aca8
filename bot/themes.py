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
from scipy import sparse

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


def tfidf(docs: Sequence[Sequence[str]]) -> tuple[sparse.csr_matrix, list[str]]:
    """L2-normalised TF-IDF matrix (docs x vocabulary, sparse) and the vocabulary.

    Sparse because a day of mentions has tens of thousands of distinct terms and
    each text a dozen: the dense matrix of 4,000 texts took 1.7 GB.
    """
    vocab = sorted({t for doc in docs for t in doc})
    index = {t: i for i, t in enumerate(vocab)}
    df = Counter(t for doc in docs for t in set(doc))
    n = len(docs)
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row, doc in enumerate(docs):
        for term, tf in Counter(doc).items():
            rows.append(row)
            cols.append(index[term])
            values.append((1.0 + math.log(tf)) * (math.log((1 + n) / (1 + df[term])) + 1.0))
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(n, len(vocab)), dtype=np.float64)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix), vocab


def cluster(vectors: np.ndarray | sparse.spmatrix, threshold: float) -> list[list[int]]:
    """Leader clustering by cosine similarity (rows must be L2-normalised).

    In input order, each vector joins the group whose running sum is most similar
    (the latest such group on a tie), if that is at least ``threshold``, or starts
    a new group. Each step is vectorised over all groups: for sparse rows, a
    group's dot product with the vector is the sum of its members' dot products
    (one sparse product with the rows so far); for dense rows, a matrix of sums.
    """
    n = vectors.shape[0]
    group_of = np.zeros(n, dtype=np.int64)
    sq_norms: list[float] = []  # squared norm of each group's sum
    groups: list[list[int]] = []
    if sparse.issparse(vectors):
        rows = sparse.csr_matrix(vectors)
        columns = sparse.csc_matrix(vectors)
        for i in range(n):
            row = rows.getrow(i)
            totals: np.ndarray = np.zeros(len(groups))
            if groups and row.nnz:
                # Every text's dot product with text i (through the columns of i's
                # terms only), those before i summed per group.
                dots = np.asarray(columns[:, row.indices] @ row.data).ravel()[:i]
                totals = np.bincount(group_of[:i], weights=dots, minlength=len(groups))
            _place(i, totals, float(row.data @ row.data), row.nnz > 0, threshold,
                   group_of, sq_norms, groups)
        return groups
    dense = np.asarray(vectors, dtype=np.float64)
    sums = np.zeros((0, dense.shape[1]))
    for i, vector in enumerate(dense):
        totals = sums[: len(groups)] @ vector
        g = _place(i, totals, float(vector @ vector), bool(vector.any()), threshold,
                   group_of, sq_norms, groups)
        if g == len(sums):
            sums = np.vstack([sums, np.zeros((max(16, len(sums)), dense.shape[1]))])
        sums[g] += vector
    return groups


def _place(i: int, totals: np.ndarray, own: float, nonzero: bool, threshold: float,
           group_of: np.ndarray, sq_norms: list[float], groups: list[list[int]]) -> int:
    """Put item ``i`` (dot products ``totals`` with each group's sum, squared norm
    ``own``) in its group and update that group's squared norm; returns the group."""
    best = -1
    if nonzero and len(groups):
        norms = np.sqrt(np.maximum(np.asarray(sq_norms), 0.0))
        sims = np.divide(totals, norms, out=np.zeros_like(totals), where=norms > 0)
        top = float(sims.max())
        if top >= threshold:
            best = int(np.flatnonzero(sims == top)[-1])
    if best < 0:
        groups.append([i])
        sq_norms.append(own)
        best = len(groups) - 1
    else:
        groups[best].append(i)
        sq_norms[best] += 2.0 * float(totals[best]) + own
    group_of[i] = best
    return best


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


def label_for(weights: sparse.csr_matrix, vocab: Sequence[str], members: Sequence[int],
              docs: Sequence[Sequence[str]], count: int) -> tuple[str, ...]:
    """Top terms of a group: used by the most members, a bigram before a single
    word on a tie, then the highest TF-IDF weight; no word appears twice.
    Beyond the first, a term must be used by at least half of the members."""
    if not vocab:
        return ()
    index = {t: i for i, t in enumerate(vocab)}
    used = Counter(t for i in members for t in set(docs[i]))
    weight = np.asarray(weights[list(members)].sum(axis=0)).ravel()
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
