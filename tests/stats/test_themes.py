"""Theme grouping (bot.themes): the vectorised leader clustering groups exactly as
its definition says, on sparse TF-IDF rows and on dense embeddings alike."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from bot.themes import cluster, find_themes, tfidf, tokens


def leader_clustering(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """The definition, one comparison at a time: in input order, each vector joins
    the group whose running sum is most similar (the latest on a tie) if that is at
    least ``threshold``, else starts a group; an all-zero vector starts its own."""
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


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms  # type: ignore[no-any-return]


def test_sparse_and_dense_clustering_match_the_definition() -> None:
    for seed in range(150):
        rng = np.random.default_rng(seed)
        n, d = int(rng.integers(1, 60)), int(rng.integers(2, 40))
        # Sparse like TF-IDF rows: a few terms per text, some texts with none.
        mask = rng.random((n, d)) < rng.uniform(0.05, 0.4)
        matrix = unit_rows(np.where(mask, rng.random((n, d)), 0.0))
        threshold = float(rng.uniform(0.1, 0.8))
        expected = leader_clustering(matrix, threshold)
        assert cluster(sparse.csr_matrix(matrix), threshold) == expected, seed
        assert cluster(matrix, threshold) == expected, seed
        # Dense like embeddings: every component set, similar texts close together.
        centres = rng.normal(size=(int(rng.integers(1, 6)), d))
        dense = unit_rows(centres[rng.integers(0, len(centres), n)]
                          + rng.normal(scale=rng.uniform(0.05, 1.0), size=(n, d)))
        expected = leader_clustering(dense, threshold)
        assert cluster(dense, threshold) == expected, seed


def test_a_tie_goes_to_the_latest_group() -> None:
    tied = unit_rows(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert leader_clustering(tied, 0.5) == [[0], [1, 2]]
    assert cluster(tied, 0.5) == [[0], [1, 2]]
    assert cluster(sparse.csr_matrix(tied), 0.5) == [[0], [1, 2]]


def test_tfidf_rows_are_unit_length_and_sparse() -> None:
    docs = [tokens(t) for t in ("refund refund still missing", "", "app crashes on login",
                                "refund missing since march")]
    weights, vocab = tfidf(docs)
    assert sparse.issparse(weights) and weights.shape == (4, len(vocab))
    norms = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
    assert np.allclose(norms, [1, 0, 1, 1])
    # A term in fewer texts weighs more: "crashes" (1 text) over "refund" (2 texts).
    row = weights.getrow(2).toarray().ravel()
    assert row[vocab.index("crashes")] > 0 and weights[0, vocab.index("refund")] > 0


def test_themes_from_an_embedder_group_by_its_vectors_and_label_by_words() -> None:
    texts = ["refund still missing after 3 weeks", "where is my refund, 3 weeks now",
             "app crashes at login", "login crash again on the app", "lovely weather"]
    topic = {0: [1.0, 0.0, 0.0], 1: [1.0, 0.1, 0.0], 2: [0.0, 1.0, 0.0], 3: [0.1, 1.0, 0.0],
             4: [0.0, 0.0, 1.0]}

    def embed(batch: list[str]) -> list[list[float]]:
        return [topic[texts.index(t)] for t in batch]

    found = find_themes(texts, embed=embed)
    assert [th.members for th in found] == [(0, 1), (2, 3)]
    assert found[0].label[0] == "refund" and "app" in found[1].label
