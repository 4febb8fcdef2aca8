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
from bot.classify.heads import fit_head  # noqa: E402
from bot.classify.lexical import Lexical  # noqa: E402
from bot.classify.metrics import classification_report  # noqa: E402
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

    dev = np.asarray([T._category_dev_row(e) for e in cats])
    fit = [e for e, d in zip(cats, dev, strict=True) if not d]
    dev_rows = [e for e, d in zip(cats, dev, strict=True) if d]
    real = [i for i, r in enumerate(dev_rows) if r.source.endswith("-gold")]
    featuriser = Lexical.fit([e.text for e in fit])
    print("category (dev split; real = its 2,576 hand-labelled real tweets)")
    for fit_b in backends:
        head = fit_head(
            "category", x_cat[fit_b][~dev], [e.label for e in fit], T.CATEGORIES,
            sample_weight=np.ones(int((~dev).sum())),
            calibration=np.asarray([T.is_calibration(e) for e in fit]), c=T.CATEGORY_C,
            balance=T.CATEGORY_BALANCE, prior_shift=T.CATEGORY_PRIOR_SHIFT,
            lexical=T._features(featuriser, fit),
        )  # fmt: skip
        engine = T._engine(head, config, x_cat[fit_b].shape[1], featuriser)
        for serve_b in backends:
            preds = engine.predict_embedded([r.text for r in dev_rows], x_cat[serve_b][dev])
            rows, real_preds = [dev_rows[i] for i in real], [preds[i] for i in real]
            summary = T.category_report(rows, real_preds, config)["summary"]["engine"]
            everything = T.category_report(dev_rows, preds, config)["summary"]["engine"]
            hits = [p.category.value == r.label for p, r in zip(real_preds, rows, strict=True)]
            accuracy = np.mean(hits)
            at_08 = next(s for s in T._threshold_sweep(rows, real_preds) if s["threshold"] == 0.8)
            print(
                f"  fit on {fit_b:9} served on {serve_b:9} real macro-F1 "
                f"{summary['macro_f1']:.3f}  accuracy {accuracy:.3f}  automated "
                f"{summary['automation_rate']:.1%} @ {summary['automated_precision']:.1%}  "
                f"(0.8: {at_08['automation_rate']:.1%} @ {at_08['automated_precision']:.1%})  "
                f"all dev macro-F1 {everything['macro_f1']:.3f}"
            )

    val = np.asarray([e.source == "umsab_val" for e in sents])
    moz = np.asarray([T.is_mozetic_heldout(e) for e in sents])
    train_rows = ~val & ~moz
    weights = np.asarray([T.SENTIMENT_SOURCE_WEIGHT.get(e.source, 1.0) for e in sents])
    val_rows = [e for e in sents if e.source == "umsab_val"]
    moz_rows = [e for e in sents if T.is_mozetic_heldout(e)]
    pos, neg = T.SENTIMENTS.index("positive"), T.SENTIMENTS.index("negative")
    print("sentiment (UMSAB val macro-F1 per language; Mozetič held-out pos/neg accuracy)")
    for fit_b in backends:
        head = fit_head(
            "sentiment", x_sent[fit_b][train_rows],
            [e.label for e, k in zip(sents, train_rows, strict=True) if k], T.SENTIMENTS,
            c=T.SENTIMENT_C, sample_weight=weights[train_rows], balance=0.0,
        )  # fmt: skip
        for serve_b in backends:
            pred = [T.SENTIMENTS[i] for i in head.proba(x_sent[serve_b][val]).argmax(1)]
            f1 = {}
            for lang in sorted({r.lang for r in val_rows}):
                idx = [i for i, r in enumerate(val_rows) if r.lang == lang]
                gold = [val_rows[i].label for i in idx]
                f1[lang] = classification_report(gold, [pred[i] for i in idx], T.SENTIMENTS)[
                    "macro_f1"
                ]
            proba = head.proba(x_sent[serve_b][moz])
            right = (proba[:, pos] - proba[:, neg] > 0) == np.asarray(
                [r.label == "positive" for r in moz_rows]
            )
            polarity = {
                lang: float(np.mean([ok for ok, r in zip(right, moz_rows, strict=True)
                                     if r.lang == lang]))  # fmt: skip
                for lang in sorted({r.lang for r in moz_rows})
            }
            print(
                f"  fit on {fit_b:9} served on {serve_b:9} mean {np.mean(list(f1.values())):.3f}  "
                + " ".join(f"{k} {v:.3f}" for k, v in f1.items())
                + "  | Mozetič " + " ".join(f"{k} {v:.3f}" for k, v in polarity.items())
            )


if __name__ == "__main__":
    main()
