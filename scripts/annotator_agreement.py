"""Agreement between the two labellings of the real-tweet dev split.

``bot/data/category_gold_second_pass.tsv`` relabels, independently, every hand-labelled
real tweet of the category dev split. This prints raw agreement, Cohen's kappa and the
macro-F1 of the second labelling scored against the first: the ceiling a model trained on
these labels can be expected to reach.

Usage: ``python scripts/annotator_agreement.py``
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECOND_PASS = "category_gold_second_pass.tsv"

from bot.classify.metrics import classification_report  # noqa: E402
from bot.classify.train import CATEGORIES, category_examples, is_dev, labelled_tweets  # noqa: E402


def main() -> None:
    from sklearn.metrics import cohen_kappa_score

    dev = [e for e in category_examples() if is_dev(e) and e.source.endswith("-gold")]
    first = {e.text: e.label for e in dev}
    second = {text: category for category, _, text in labelled_tweets(SECOND_PASS)}
    texts = [t for t in first if t in second]
    a, b = [first[t] for t in texts], [second[t] for t in texts]
    report = classification_report(a, b, CATEGORIES)
    out = {
        "rows": len(texts),
        "dev_rows_not_relabelled": len(first) - len(texts),
        "agreement": round(sum(x == y for x, y in zip(a, b, strict=True)) / len(texts), 4),
        "cohen_kappa": round(float(cohen_kappa_score(a, b)), 4),
        "macro_f1_second_vs_first": report["macro_f1"],
        "per_class_f1": {k: v["f1"] for k, v in report["per_class"].items()},
        "top_disagreements": [
            f"{x}->{y}: {n}"
            for (x, y), n in Counter((x, y) for x, y in zip(a, b, strict=True) if x != y)
            .most_common(8)
        ],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
