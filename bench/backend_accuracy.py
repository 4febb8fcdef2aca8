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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.classify import train as T  # noqa: E402,N812
from bot.classify.engine import get_encoder  # noqa: E402
from bot.classify.lexical import Lexical  # noqa: E402
from bot.config import load_care_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--backends", default="onnx,openvino")
    args = ap.parse_args()
    backends = args.backends.split(",")
    config = load_care_config(None)
    cats, sents = T.category_examples(), T.sentiment_examples(args.shared_data)
    caches = {b: T.EmbeddingCache(get_encoder("default", b)) for b in backends}
    x_cat = {b: c.embed([e.text for e in cats]) for b, c in caches.items()}
    x_sent = {b: c.embed([e.text for e in sents]) for b, c in caches.items()}
    w_sent = np.asarray([T.SENTIMENT_SOURCE_WEIGHT.get(e.source, 1.0) for e in sents])
    # The IDF is fitted on the rows the dev fit trains on, as `carebot train --report` does.
    featuriser = Lexical.fit([e.text for e in cats if not T._category_dev_row(e)])

    print("category (dev split; real = its 2,576 hand-labelled real tweets)")
    for fit_b in backends:
        head = T.category_dev_head(cats, x_cat[fit_b], np.ones(len(cats)), featuriser)
        for serve_b in backends:
            report = T.category_dev_report(head, cats, x_cat[serve_b], config, featuriser)
            engine = report["real"]["all"]["engine"]
            at_08 = next(t for t in report["real"]["thresholds"] if t["threshold"] == 0.8)
            print(
                f"  fit on {fit_b:9} served on {serve_b:9} real macro-F1 "
                f"{engine['macro_f1']:.3f}  accuracy {engine['accuracy']:.3f}  automated "
                f"{engine['automation_rate']:.1%} @ {engine['automated_precision']:.1%}  "
                f"(0.8: {at_08['automation_rate']:.1%} @ {at_08['automated_precision']:.1%})  "
                f"all dev macro-F1 {report['summary']['engine']['macro_f1']:.3f}"
            )

    print("sentiment (UMSAB val macro-F1 per language; Mozetič held-out pos/neg accuracy)")
    for fit_b in backends:
        head = T.sentiment_dev_head(sents, x_sent[fit_b], w_sent)
        for serve_b in backends:
            summary = T.sentiment_dev_report(head, sents, x_sent[serve_b])["summary"]
            f1 = summary["macro_f1_by_lang"]
            polarity = summary["mozetic_heldout_polarity_accuracy"]
            print(
                f"  fit on {fit_b:9} served on {serve_b:9} mean {summary['macro_f1_mean']:.3f}  "
                + " ".join(f"{k} {v:.3f}" for k, v in f1.items())
                + "  | Mozetič " + " ".join(f"{k} {v:.3f}" for k, v in polarity.items())
            )


if __name__ == "__main__":
    main()
