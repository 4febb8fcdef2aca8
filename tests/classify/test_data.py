"""The shipped category set: every hand-labelled real tweet is in it once, with its label,
and no text appears in two rows: no weak label shadows a real one, no text is in two splits."""

from __future__ import annotations

from collections import Counter

from bot.classify.train import CATEGORIES, category_examples, is_dev, labelled_tweets


def test_gold_rows_are_shipped_once_each_and_every_text_once() -> None:
    gold = labelled_tweets()
    assert len(gold) == 12766 and {c for c, _, _ in gold} <= set(CATEGORIES)
    examples = category_examples()
    shipped = Counter((e.text, e.label) for e in examples if e.source.endswith("-gold"))
    assert shipped == Counter((t, c) for c, _, t in gold)
    # One row per text: no weak label shadows a gold one, no text sits in two splits.
    texts = Counter(" ".join(e.text.split()).lower() for e in examples)
    assert len(texts) == len(examples)


def test_dev_split_holds_real_tweets_of_every_common_category() -> None:
    dev = [e for e in category_examples() if is_dev(e) and e.source.endswith("-gold")]
    counts = Counter(e.label for e in dev)
    assert 2400 <= len(dev) <= 2700
    assert all(counts[c] >= 40 for c in ("case", "rant", "rave", "noise")) and counts["query"] >= 10


def test_calibration_split_is_real_tweets_the_adapter_never_trains_on(tmp_path) -> None:
    from bot.classify.finetune import training_rows
    from bot.classify.train import is_calibration

    (tmp_path / "sentiment_train.csv").write_text(
        "text,label,lang,source\r\nnice,positive,en,umsab_train\r\n", "utf-8"
    )
    examples = category_examples()
    calibration = [e for e in examples if is_calibration(e)]
    gold = [e for e in examples if e.source.endswith("-gold") and not is_dev(e)]
    assert all(e.source.endswith("-gold") and not is_dev(e) for e in calibration)
    assert 0.1 < len(calibration) / len(gold) < 0.15
    trained = {r.text for r in training_rows(tmp_path) if r.task == 1}
    assert not trained & {e.text for e in calibration}
    assert not trained & {e.text for e in examples if is_dev(e)}
    assert trained & {e.text for e in gold if not is_calibration(e)}


def test_second_pass_relabels_dev_tweets_only_and_mostly_agrees() -> None:
    second = labelled_tweets("category_gold_second_pass.tsv")
    dev = [e for e in category_examples() if is_dev(e) and e.source.endswith("-gold")]
    first = {e.text: e.label for e in dev}
    assert len(second) == 705 and all(t in first for _, _, t in second)
    agree = sum(first[t] == c for c, _, t in second) / len(second)
    assert 0.85 < agree < 1.0
