"""Which encoder adapter classifies best? Dev figures of several side by side.

For each adapter (``shipped``, ``none`` for the plain base encoder, or a file such
as one written by ``scripts/finetune_encoder.py`` or ``scripts/soup_adapters.py``)
this merges it into the base model, embeds the training and dev rows on one
backend, fits the shipped head recipe with the dev rows held out (exactly as
``carebot train --report`` does) and prints, one line each: category macro-F1,
accuracy, automation and its precision at ``classification.threshold`` and at 0.8
on the 2,576 real dev tweets, macro-F1 on all dev rows; sentiment macro-F1 on UMSAB
val and pos/neg accuracy on the held-out Mozetič tweets.

Embeddings are cached per adapter and backend, as ``carebot train`` caches them (a
new adapter embeds 52,000 rows: about 4 minutes on 2 cores with OpenVINO).

Usage: ``python bench/adapter_accuracy.py shipped /tmp/run2.safetensors [--backend onnx]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _accuracy import DevRows  # noqa: E402

from bot.classify import train as T  # noqa: E402,N812
from bot.classify.encoder import Encoder  # noqa: E402
from bot.config import load_care_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", nargs="+", help="'shipped', 'none' or an adapter file")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    config = load_care_config(None)
    rows = DevRows(args.shared_data)
    lines = []
    for spec in args.adapters:
        adapter = {"shipped": "shipped", "none": None}.get(spec, spec)
        if adapter not in ("shipped", None) and not Path(spec).is_file():
            ap.error(f"no adapter file {spec}")
        encoder = Encoder("default", backend=args.backend, adapter=adapter)
        x_cat, x_sent = rows.embed(T.EmbeddingCache(encoder))
        category = rows.category_line(rows.category_head(x_cat), x_cat, config)
        sentiment = rows.sentiment_line(rows.sentiment_head(x_sent), x_sent)
        lines.append((f"{Path(spec).name} ({encoder.backend})", category, sentiment))
        print(f"{lines[-1][0]}: embedded", file=sys.stderr, flush=True)
    width = max(len(name) for name, _, _ in lines)
    print("category (dev split; real = its 2,576 hand-labelled real tweets)")
    for name, category, _ in lines:
        print(f"  {name:{width}}  {category}")
    print("sentiment (UMSAB val macro-F1 per language; Mozetič held-out pos/neg accuracy)")
    for name, _, sentiment in lines:
        print(f"  {name:{width}}  {sentiment}")


if __name__ == "__main__":
    main()
