"""Evaluation figures for classifiers: F1, confusion matrix, automation at a threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def classification_report(
    gold: Sequence[str],
    pred: Sequence[str],
    labels: Sequence[str],
    confidence: Sequence[float] | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Macro-F1, accuracy, per-class P/R/F1 and the confusion matrix.

    Macro-F1 averages the classes that occur in ``gold`` or in ``pred`` (as
    scikit-learn's ``f1_score(average="macro")`` does): a class predicted but never
    in the gold labels counts with F1 0 rather than dropping out of the average.

    With ``confidence`` and ``threshold``: ``automation_rate`` is the share of
    rows at or above the threshold (routed without triage) and
    ``automated_precision`` the accuracy on those rows.
    """
    n = len(gold)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        if g in index and p in index:
            matrix[index[g]][index[p]] += 1
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for label, i in index.items():
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        actual = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": actual,
        }
        if actual or predicted:
            f1s.append(f1)
    correct = sum(g == p for g, p in zip(gold, pred, strict=True))
    report: dict[str, Any] = {
        "n": n,
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
        "accuracy": round(correct / n, 4) if n else 0.0,
        "per_class": per_class,
        "confusion_matrix": {"labels": list(labels), "rows_gold_cols_pred": matrix},
    }
    if confidence is not None and threshold is not None:
        auto = [i for i in range(n) if confidence[i] >= threshold]
        hits = sum(gold[i] == pred[i] for i in auto)
        report["threshold"] = threshold
        report["automation_rate"] = round(len(auto) / n, 4) if n else 0.0
        report["automated_precision"] = round(hits / len(auto), 4) if auto else None
    return report


#: Routing thresholds a sweep reports (``classification.threshold`` is one of them by default).
SWEEP = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def threshold_sweep(
    gold: Sequence[str], pred: Sequence[str], confidence: Sequence[float],
    thresholds: Sequence[float] = SWEEP,
) -> list[dict[str, Any]]:  # fmt: skip
    """Automation rate and precision of what is automated, threshold by threshold: what
    moving ``classification.threshold`` would trade. The precision is ``None`` where
    nothing is automated, as in :func:`classification_report`."""
    out = []
    for threshold in thresholds:
        auto = [i for i, c in enumerate(confidence) if c >= threshold]
        right = sum(gold[i] == pred[i] for i in auto)
        out.append({
            "threshold": threshold,
            "automation_rate": round(len(auto) / max(len(gold), 1), 4),
            "automated_precision": round(right / len(auto), 4) if auto else None,
        })  # fmt: skip
    return out


def polarity_accuracy(gold: Sequence[str], pred: Sequence[str]) -> float | None:
    """Accuracy on gold positive/negative rows (a neutral prediction counts as wrong)."""
    rows = [(g, p) for g, p in zip(gold, pred, strict=True) if g in ("positive", "negative")]
    if not rows:
        return None
    return round(sum(g == p for g, p in rows) / len(rows), 4)
