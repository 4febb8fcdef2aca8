"""Accuracy of the int8 ONNX encoder (the default backend) beside fp32 ``transformers``.

The speed figures of ``classify_throughput.py`` only count if quantisation costs
little accuracy (target: within 1 point of fp32). For each backend this fits the
linear heads on the training rows' embeddings and prints, side by side:
sentiment macro-F1 on UMSAB val per language, category macro-F1 / automation /
precision on the category dev split and on its real-tweet part — the same dev
rows ``carebot train`` reports, never trained on.

Usage: ``python bench/quantisation_accuracy.py [--shared-data ../shared/data]
[--backends onnx,torch] [--no-adapter]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.classify.encoder import Encoder  # noqa: E402
from bot.classify.finetune import dev_evaluator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--backends", default="onnx,torch")
    ap.add_argument("--no-adapter", action="store_true", help="the plain base encoder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    evaluate = dev_evaluator(args.shared_data)
    results = {}
    for backend in args.backends.split(","):
        encoder = Encoder(
            "default", backend=backend, adapter=None if args.no_adapter else "shipped"
        )
        start = time.perf_counter()
        results[backend] = evaluate(encoder.encode)
        results[backend]["seconds"] = round(time.perf_counter() - start, 1)
        results[backend]["encoder"] = encoder.name
    if args.json:
        print(json.dumps(results, indent=1))
        return
    names = list(results)
    print(f"{'':34}" + "".join(f"{n:>12}" for n in names))
    print(
        f"{'sentiment macro-F1 (UMSAB val)':34}"
        + "".join(f"{results[n]['sentiment_val_f1']:>12.4f}" for n in names)
    )
    for lang in results[names[0]]["sentiment_val_f1_by_lang"]:
        print(
            f"{'  ' + lang:34}"
            + "".join(f"{results[n]['sentiment_val_f1_by_lang'][lang]:>12.4f}" for n in names)
        )
    for split in ("category_dev", "category_dev_real"):
        for key in ("macro_f1", "accuracy", "automation_rate", "automated_precision"):
            print(
                f"{split + ' ' + key:34}"
                + "".join(f"{results[n][split][key]:>12.4f}" for n in names)
            )
    print(f"{'seconds':34}" + "".join(f"{results[n]['seconds']:>12}" for n in names))


if __name__ == "__main__":
    main()
