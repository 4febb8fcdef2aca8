"""The shipped category set: every hand-labelled real tweet is in it once, with its label,
and no heuristic (weak) row repeats a real tweet's text under another label."""

from __future__ import annotations

from collections import Counter
from importlib import resources

from bot.classify.train import CATEGORIES, category_examples, is_dev


def _gold() -> list[tuple[str, str, str]]:
    text = resources.files("bot.data").joinpath("category_gold_real.tsv").read_text("utf-8")
    rows = [line.split("\t", 2) for line in text.splitlines() if line and line[0] != "#"]
    return [(c, s, t) for c, s, t in rows]


def test_gold_rows_are_shipped_once_each_and_never_shadowed_by_weak_labels() -> None:
    gold = _gold()
    assert len(gold) == 2000 and {c for c, _, _ in gold} <= set(CATEGORIES)
    examples = category_examples()
    shipped = Counter((e.text, e.label) for e in examples if e.source.endswith("-gold"))
    assert shipped == Counter((t, c) for c, _, t in gold)
    gold_texts = {" ".join(t.split()).lower() for _, _, t in gold}
    weak = [e for e in examples if e.source.endswith("-weak")]
    assert weak and not [e.text for e in weak if " ".join(e.text.split()).lower() in gold_texts]


def test_dev_split_holds_real_tweets_of_every_common_category() -> None:
    dev = [e for e in category_examples() if is_dev(e) and e.source.endswith("-gold")]
    counts = Counter(e.label for e in dev)
    assert 300 <= len(dev) <= 500
    assert all(counts[c] >= 40 for c in ("case", "rant", "rave", "noise")) and counts["query"] >= 10
