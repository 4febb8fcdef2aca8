"""Shared by the accuracy benches: the shipped head recipe fitted on one set of
embeddings (dev rows held out, as ``carebot train --report`` does) and scored on
another, printed on one line per pair."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.classify import train as T  # noqa: E402,N812
from bot.classify.lexical import Lexical  # noqa: E402


def _pct(value: float | None) -> str:
    """A share as a percentage; ``n/a`` when nothing was automated."""
    return "n/a" if value is None else f"{value:.1%}"


class DevRows:
    """The category and sentiment rows, the sentiment source weights and the n-gram
    featuriser fitted on the rows the dev fit trains on."""

    def __init__(self, shared_data: Path) -> None:
        self.cats, self.sents = T.category_examples(), T.sentiment_examples(shared_data)
        self.w_sent = np.asarray([T.SENTIMENT_SOURCE_WEIGHT.get(e.source, 1.0) for e in self.sents])
        self.featuriser = Lexical.fit([e.text for e in self.cats if not T._category_dev_row(e)])

    def embed(self, cache: T.EmbeddingCache) -> tuple[np.ndarray, np.ndarray]:
        """(category rows, sentiment rows) embedded through ``cache``."""
        return (cache.embed([e.text for e in self.cats]),
                cache.embed([e.text for e in self.sents]))

    def category_head(self, x_cat: np.ndarray) -> Any:
        return T.category_dev_head(self.cats, x_cat, np.ones(len(self.cats)), self.featuriser)

    def category_line(self, head: Any, x_cat: np.ndarray, config: Any) -> str:
        report = T.category_dev_report(head, self.cats, x_cat, config, self.featuriser)
        engine = report["real"]["all"]["engine"]
        at_08 = next(t for t in report["real"]["thresholds"] if t["threshold"] == 0.8)
        return (
            f"real macro-F1 {engine['macro_f1']:.3f}  accuracy {engine['accuracy']:.3f}  "
            f"automated {engine['automation_rate']:.1%} @ {_pct(engine['automated_precision'])}  "
            f"(0.8: {at_08['automation_rate']:.1%} @ {_pct(at_08['automated_precision'])})  "
            f"all dev macro-F1 {report['summary']['engine']['macro_f1']:.3f}"
        )

    def sentiment_head(self, x_sent: np.ndarray) -> Any:
        return T.sentiment_dev_head(self.sents, x_sent, self.w_sent)

    def sentiment_line(self, head: Any, x_sent: np.ndarray) -> str:
        summary = T.sentiment_dev_report(head, self.sents, x_sent)["summary"]
        f1 = summary["macro_f1_by_lang"]
        polarity = summary["mozetic_heldout_polarity_accuracy"]
        return (
            f"mean {summary['macro_f1_mean']:.3f}  "
            + " ".join(f"{k} {v:.3f}" for k, v in f1.items())
            + "  | Mozetič " + " ".join(f"{k} {v:.3f}" for k, v in polarity.items())
        )
