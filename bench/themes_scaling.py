"""Theme grouping for the daily and weekly digests, as the day's mentions grow.

``bot.themes.find_themes`` groups a day's actionable mentions (TF-IDF over words,
leader clustering). It used dense docs x vocabulary matrices and a Python loop over
every group for every text; the baseline in the same run is that implementation,
kept below as ``dense_find_themes``. For each size the script groups the first N
real customer tweets (``bot/data/category_gold_real.tsv``) with both, each in a
fresh subprocess, and prints the median wall time and peak RSS over the runs, and
whether both found the same themes.

Usage: ``python bench/themes_scaling.py [--sizes 500,1000,2000,4000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import themes  # noqa: E402
from tests.stats.test_themes import leader_clustering  # noqa: E402


def texts(n: int) -> list[str]:
    lines = (ROOT / "bot" / "data" / "category_gold_real.tsv").read_text("utf-8").splitlines()
    rows = [line.split("\t", 2)[2] for line in lines if line and not line.startswith("#")]
    return rows[:n]


# -- the baseline: the dense implementation this replaced (2026-12-01); its clustering
# loop is the definition the tests check against (tests/stats/test_themes.py) ---------

def dense_tfidf(docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
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


def dense_find_themes(items: Sequence[str], min_size: int = 2) -> list[tuple[int, ...]]:
    docs = [themes.terms(t) for t in items]
    weights, _ = dense_tfidf(docs)  # the labels' matrix, built as before
    words, _ = dense_tfidf([themes.tokens(t) for t in items])
    groups = leader_clustering(words, 0.3)  # the loop over every group, as before
    kept = [tuple(g) for g in groups if len(g) >= min_size]
    return sorted(kept, key=lambda g: (-len(g), g[0]))


# -- one measurement per subprocess (peak RSS is per process) -----------------------

def measure(impl: str, n: int) -> dict[str, object]:
    items = texts(n)
    start = time.perf_counter()
    if impl == "dense":
        groups = dense_find_themes(items)
    else:
        groups = [th.members for th in themes.find_themes(items)]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "groups": [list(g) for g in groups]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="500,1000,2000,4000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    print(f"{'texts':>6}  {'dense (before): s':>18}  {'peak MB':>8}  "
          f"{'sparse (now): s':>16}  {'peak MB':>8}  same themes")
    for n in (int(s) for s in args.sizes.split(",")):
        result: dict[str, list[dict[str, object]]] = {"dense": [], "sparse": []}
        for _ in range(args.runs):
            for impl in result:
                out = subprocess.run([sys.executable, __file__, "--one", impl, str(n)],
                                     capture_output=True, text=True, check=True)
                result[impl].append(json.loads(out.stdout))

        def med(impl: str, key: str, runs: dict[str, list[dict[str, object]]] = result
                ) -> float:
            return statistics.median(float(r[key]) for r in runs[impl])  # type: ignore[arg-type]

        same = result["dense"][0]["groups"] == result["sparse"][0]["groups"]
        print(f"{n:>6}  {med('dense', 'seconds'):>18.2f}  {med('dense', 'peak_mb'):>8.0f}  "
              f"{med('sparse', 'seconds'):>16.2f}  {med('sparse', 'peak_mb'):>8.0f}  "
              f"{'yes' if same else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
