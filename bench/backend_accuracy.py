"""Do heads fitted on one encoder backend's embeddings hold on another's?

The shipped heads are fitted on int8 ONNX embeddings; on CPUs with AMX, ``auto``
serves them on OpenVINO (bf16). For each (fit backend, serve backend) pair this
fits the shipped recipe on the training rows (dev rows held out, exactly as
``carebot train --report`` does) and prints the dev figures: category macro-F1,
accuracy, automation and its precision at ``classification.threshold`` and at 0.8
on the 2,576 real dev tweets, macro-F1 on all dev rows; sentiment macro-F1 on
UMSAB val and pos/neg accuracy on the held-out Mozetič tweets.

Embeddings come from the per-backend cache ``carebot train`` fills (the first run
for a backend embeds 52,000 rows: about 4 minutes on 2 cores).

Usage: ``python bench/backend_accuracy.py [--backends onnx,openvino] [--shared-data DIR]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _accuracy import DevRows  # noqa: E402

from bot.classify import train as T  # noqa: E402,N812
from bot.classify.engine import get_encoder  # noqa: E402
from bot.config import load_care_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--backends", default="onnx,openvino")
    args = ap.parse_args()
    backends = args.backends.split(",")
    config = load_care_config(None)
    rows = DevRows(args.shared_data)
    x_cat, x_sent = {}, {}
    for b in backends:
        x_cat[b], x_sent[b] = rows.embed(T.EmbeddingCache(get_encoder("default", b)))

    print("category (dev split; real = its 2,576 hand-labelled real tweets)")
    for fit_b in backends:
        head = rows.category_head(x_cat[fit_b])
        for serve_b in backends:
            line = rows.category_line(head, x_cat[serve_b], config)
            print(f"  fit on {fit_b:9} served on {serve_b:9} {line}")

    print("sentiment (UMSAB val macro-F1 per language; Mozetič held-out pos/neg accuracy)")
    for fit_b in backends:
        head = rows.sentiment_head(x_sent[fit_b])
        for serve_b in backends:
            print(f"  fit on {fit_b:9} served on {serve_b:9} "
                  f"{rows.sentiment_line(head, x_sent[serve_b])}")


if __name__ == "__main__":
    main()
