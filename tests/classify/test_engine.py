"""Rules/model precedence, calibrated agreement, routing and the one-pass contract (fast fakes)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.classify.engine import TRIAGE, EngineClassifier, route_for
from bot.classify.heads import Head, Heads, fit_temperature, softmax
from bot.classify.rules import RulesClassifier
from bot.config import CareConfig
from bot.domain import Category, Prediction
from tests.classify.conftest import CATEGORIES, FakeEncoder, one_hot_heads


def test_strong_rule_beats_disagreeing_model(fake_engine) -> None:
    engine, _ = fake_engine
    # Two fraud phrases -> strong rules evidence; the fake model says "case" (boot).
    [pred] = engine.predict(["phishing scam: my laptop won't boot"])
    rules_only = engine.rules.predict_one("phishing scam: my laptop won't boot")
    if rules_only.confidence >= engine.rules_strong:
        assert pred.category is Category.FRAUD
        assert pred.method == "rules"
        assert pred.confidence == rules_only.confidence
    else:  # pragma: no cover - the config's terms changed
        pytest.skip("sample terms no longer give a strong fraud hit")


def test_confident_model_overrules_a_strong_rule_and_an_unsure_one_does_not(
    care_config: CareConfig,
) -> None:
    from bot.classify.engine import build_classifier, model_overrides

    text = "phishing scam: my laptop won't boot"
    encoder = FakeEncoder({"boot": CATEGORIES.index("case")})
    rules = RulesClassifier(care_config.sample_terms)
    assert rules.predict_one(text).confidence >= 0.79  # a strong fraud hit
    threshold = model_overrides(care_config)
    assert threshold == care_config.classification.threshold == build_classifier(
        care_config
    ).model_overrides
    for strength, expected in ((3.0, (Category.CASE, "model")), (1.0, (Category.FRAUD, "rules"))):
        engine = EngineClassifier(
            rules, one_hot_heads(strength), encoder, model_overrides=threshold,
            detect_language=False,
        )  # type: ignore[arg-type]  # fmt: skip
        [pred] = engine.predict([text])
        model_p = float(engine.heads.category.proba(encoder.encode([text])).max())
        assert (pred.category, pred.method) == expected
        assert (model_p >= threshold) == (expected[1] == "model")
    always = care_config.model_copy(
        update={"classification": care_config.classification.model_copy(
            update={"rules_always_win": True})}
    )  # fmt: skip
    assert model_overrides(always) is None and build_classifier(always).model_overrides is None


def test_weak_rule_loses_to_model(fake_engine) -> None:
    engine, _ = fake_engine
    # "awesome" is a single rave term (weak rule); the model sees "invoice" -> query.
    text = "awesome, where is my invoice"
    assert engine.rules.predict_one(text).category is Category.RAVE
    [pred] = engine.predict([text])
    assert pred.category is Category.QUERY
    assert pred.method == "model"


def test_agreement_raises_confidence(fake_engine) -> None:
    engine, _ = fake_engine
    heads = engine.heads
    emb = engine.encoder.encode(["awesome"])
    model_p = float(heads.category.proba(emb).max())
    [pred] = engine.predict(["awesome"])
    assert pred.category is Category.RAVE
    assert pred.method == "rules+model"
    assert model_p < pred.confidence <= 0.99


def test_no_rule_hit_is_model_only(fake_engine) -> None:
    engine, _ = fake_engine
    [pred] = engine.predict(["the device will not boot today"])
    assert engine.rules.predict_one("the device will not boot today").confidence == 0.0
    assert (pred.category, pred.method) == (Category.CASE, "model")


def test_one_encoder_pass_per_predict_for_both_heads(fake_engine) -> None:
    engine, encoder = fake_engine
    preds = engine.predict(["boot", "invoice", "awesome", "nothing at all"])
    assert encoder.calls == 1
    assert all(p.sentiment is not None and p.sentiment_score is not None for p in preds)


def test_threshold_routing(care_config: CareConfig) -> None:
    threshold = care_config.classification.threshold
    below = Prediction(Category.CASE, threshold - 0.01, "model")
    at = Prediction(Category.CASE, threshold, "model")
    noise = Prediction(Category.NOISE, 0.95, "model")
    assert route_for(below, care_config) == TRIAGE
    assert route_for(at, care_config) == care_config.routing[Category.CASE]
    assert route_for(noise, care_config) == "noise"
    stricter = care_config.model_copy(
        update={"classification": care_config.classification.model_copy(update={"threshold": 0.99})}
    )
    assert route_for(at, stricter) == TRIAGE


def test_every_category_routes_to_its_department(care_config: CareConfig) -> None:
    for category in Category:
        route = route_for(Prediction(category, 1.0, "model"), care_config)
        expected = care_config.routing[category] or "noise"
        assert route == expected


def test_temperature_scaling_fixes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    logits = rng.normal(size=(2000, 3))
    logits[np.arange(2000), y] += 1.0
    overconfident = logits * 6
    t = fit_temperature(overconfident, y)
    assert 3.0 < t < 12.0

    def nll(z: np.ndarray) -> float:
        return float(-np.log(softmax(z)[np.arange(len(y)), y]).mean())

    assert nll(overconfident / t) < nll(overconfident)


def test_heads_roundtrip(tmp_path) -> None:
    heads = one_hot_heads()
    heads.category.temperature = 1.7
    path = tmp_path / "heads.jsonl"
    (tmp_path / "heads.lexical.npz").write_bytes(b"stale")  # from an earlier n-gram training
    heads.save(path)
    assert not (tmp_path / "heads.lexical.npz").exists()
    loaded = type(heads).load(path)
    assert loaded.lexical is None and loaded.category.lexical_weight is None
    x = np.eye(8, dtype=np.float32)
    assert np.allclose(loaded.category.proba(x), heads.category.proba(x), atol=1e-5)
    assert loaded.encoder == "fake" and loaded.category.classes == CATEGORIES


def test_lazy_loading_happens_once(care_config: CareConfig) -> None:
    loads = []

    def load_encoder() -> FakeEncoder:
        loads.append(1)
        return FakeEncoder({})

    engine = EngineClassifier(
        RulesClassifier(care_config.sample_terms),
        one_hot_heads,
        load_encoder,
        detect_language=False,
    )  # type: ignore[arg-type]
    assert loads == []
    engine.predict(["a"])
    engine.predict(["b"])
    assert loads == [1]


def test_head_fit_learns_separable_data() -> None:
    from bot.classify.heads import fit_head

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 3
    labels = rng.integers(0, 3, 600)
    x = centres[labels] + rng.normal(size=(600, 16))
    head: Head = fit_head("t", x, [str(v) for v in labels], ["0", "1", "2"])
    acc = (head.proba(x).argmax(1) == labels).mean()
    assert acc > 0.95
    assert head.temperature > 0


def test_head_temperature_is_fitted_on_the_calibration_rows_given() -> None:
    """Rows the features predict less well (as live tweets are, next to rows an encoder
    was tuned on) must lower the confidence when they are the ones calibrating."""
    from bot.classify.heads import fit_head

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(3, 16)) * 3
    labels = rng.integers(0, 3, 900)
    x = centres[labels] + rng.normal(size=(900, 16))
    noisy = np.zeros(900, dtype=bool)
    noisy[:300] = True
    labels[:300] = np.where(rng.random(300) < 0.4, rng.integers(0, 3, 300), labels[:300])
    names, classes = [str(v) for v in labels], ["0", "1", "2"]
    on_noisy = fit_head("t", x, names, classes, calibration=noisy)
    on_clean = fit_head("t", x, names, classes, calibration=~noisy)
    assert on_noisy.temperature > 1.5 * on_clean.temperature
    assert on_noisy.proba(x).max(1).mean() < on_clean.proba(x).max(1).mean() - 0.1


def test_prior_shift_moves_the_head_to_the_class_mix_of_its_calibration_rows() -> None:
    """Trained on an even mix, served (and calibrated) on a 70/20/10 one: the per-class
    offsets must make the head likelier and more accurate on fresh served rows; a
    heavy penalty must leave it as temperature scaling alone leaves it."""
    from bot.classify.heads import fit_head

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 8))

    def draw(n: int, mix: list[float]) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(3, size=n, p=mix)
        return centres[y] + rng.normal(size=(n, 8)) * 1.5, y

    served = [0.7, 0.2, 0.1]
    x_train, y_train = draw(3000, [1 / 3] * 3)
    x_cal, y_cal = draw(600, served)
    x_new, y_new = draw(4000, served)
    x, y = np.vstack([x_train, x_cal]), np.r_[y_train, y_cal]
    cal = np.r_[np.zeros(len(y_train), dtype=bool), np.ones(len(y_cal), dtype=bool)]
    names, classes = [str(v) for v in y], ["0", "1", "2"]
    plain = fit_head("t", x, names, classes, calibration=cal, balance=0.0)
    shifted = fit_head("t", x, names, classes, calibration=cal, balance=0.0, prior_shift=0.01)
    pinned = fit_head("t", x, names, classes, calibration=cal, balance=0.0, prior_shift=1e4)

    def nll(head: Head) -> float:
        return float(-np.log(head.proba(x_new)[np.arange(len(y_new)), y_new]).mean())

    def accuracy(head: Head) -> float:
        return float((head.proba(x_new).argmax(1) == y_new).mean())

    assert nll(shifted) < nll(plain) - 0.02
    assert accuracy(shifted) > accuracy(plain) + 0.02
    assert (shifted.proba(x_new).argmax(1) == 0).mean() > (plain.proba(x_new).argmax(1) == 0).mean()
    assert np.allclose(pinned.proba(x_new), plain.proba(x_new), atol=0.01)


def test_head_balance_one_is_scikit_learns_balanced_and_zero_is_the_natural_mix() -> None:
    from sklearn.linear_model import LogisticRegression

    from bot.classify.heads import fit_head

    rng = np.random.default_rng(3)
    labels = np.searchsorted([0.8, 0.95], rng.random(900))  # 80 % / 15 % / 5 %
    x = rng.normal(size=(900, 8)) + np.eye(3, 8)[labels] * 1.2
    names, classes = [str(v) for v in labels], ["0", "1", "2"]
    for balance, class_weight in ((1.0, "balanced"), (0.0, None)):
        head = fit_head("t", x, names, classes, balance=balance)
        ref = LogisticRegression(C=4.0, max_iter=3000, class_weight=class_weight).fit(x, labels)
        assert (head.logits(x).argmax(1) == ref.predict(x)).mean() > 0.99
    rare = [(fit_head("t", x, names, classes, balance=b).proba(x).argmax(1) == 2).sum()
            for b in (0.0, 0.5, 1.0)]  # fmt: skip
    assert rare[0] < rare[1] < rare[2]


def _ngram_heads() -> tuple[Heads, list[str], list[str]]:
    """Heads whose embedding carries nothing: only the character n-grams tell the classes."""
    from bot.classify.heads import fit_head
    from bot.classify.lexical import Lexical

    rng = np.random.default_rng(4)
    words = {"case": "kaputt", "query": "wiewo", "rave": "superb"}
    labels = [str(v) for v in rng.choice(list(words), 300)]
    texts = [f"{rng.choice(['hey', 'so', 'well'])} {words[y]} {rng.integers(100)}" for y in labels]
    x = rng.normal(size=(300, 8)).astype(np.float32)
    lexical = Lexical.fit(texts)
    category = fit_head("category", x, labels, CATEGORIES, lexical=lexical.transform(texts))
    sentiment = one_hot_heads().sentiment
    return Heads(category, sentiment, "fake", "fake", lexical), texts, labels


def test_heads_read_character_ngrams_beside_the_embedding(care_config: CareConfig) -> None:
    heads, texts, labels = _ngram_heads()
    x = np.zeros((len(texts), 8), dtype=np.float32)
    pred = heads.category.proba(x, heads.features(texts)).argmax(1)
    assert (np.asarray(CATEGORIES)[pred] == np.asarray(labels)).mean() > 0.95
    with pytest.raises(ValueError, match="n-grams"):
        heads.category.proba(x)  # a head that reads n-grams refuses to guess without them
    # Through the engine: one encoder pass, n-grams computed from the same texts.
    encoder = FakeEncoder({})
    engine = EngineClassifier(RulesClassifier({}), heads, encoder, detect_language=False)  # type: ignore[arg-type]
    preds = engine.predict(["well superb 7", "so kaputt 3", "hey wiewo 12"])
    assert [p.category.value for p in preds] == ["rave", "case", "query"]
    assert encoder.calls == 1


def test_ngram_heads_roundtrip_and_a_wrong_sidecar_is_refused(tmp_path, monkeypatch) -> None:
    from bot.classify import engine as engine_module
    from bot.classify.heads import lexical_path
    from bot.errors import ConfigError

    heads, texts, _ = _ngram_heads()
    path = tmp_path / "heads.jsonl"
    heads.save(path)
    sidecar = lexical_path(path)
    assert sidecar.name == "heads.lexical.npz" and sidecar.exists()
    loaded = Heads.load(path)
    x = np.zeros((len(texts), 8), dtype=np.float32)
    assert loaded.sentiment.lexical_weight is None  # only the heads that read n-grams
    assert np.allclose(
        loaded.category.proba(x, loaded.features(texts)),
        heads.category.proba(x, heads.features(texts)),
        atol=2e-3,  # float16 storage
    )
    monkeypatch.setattr(engine_module, "encoder_identity", lambda *a: "fake")
    assert engine_module.load_heads("m", path).lexical is not None
    other, _, _ = _ngram_heads()
    other.category.lexical_weight = other.category.lexical_weight * 2
    other.save(tmp_path / "other.jsonl")
    sidecar.write_bytes((tmp_path / "other.lexical.npz").read_bytes())  # same name, other heads
    with pytest.raises(ConfigError, match=r"heads\.lexical\.npz is not the one.*carebot train"):
        engine_module.load_heads("m", path)
    sidecar.unlink()
    with pytest.raises(ConfigError, match=r"heads\.lexical\.npz, which is missing.*carebot train"):
        engine_module.load_heads("m", path)


def test_large_batches_read_the_texts_while_the_encoder_runs(fake_engine, monkeypatch) -> None:
    """From OVERLAP_FROM texts, rules / n-grams / language run in a second thread beside
    the encoder; the predictions are those of the sequential path, in input order."""
    import threading

    from bot.classify.engine import OVERLAP_FROM

    engine, encoder = fake_engine
    threads: set[str] = set()
    rules_one = engine.rules.predict_one

    def recording(text: str):  # type: ignore[no-untyped-def]
        threads.add(threading.current_thread().name)
        return rules_one(text)

    monkeypatch.setattr(engine.rules, "predict_one", recording)
    base = ["my laptop will not boot", "where is my invoice", "awesome support, thanks",
            "lunch was fine", "please refund my order, the device will not boot"]
    texts = [f"{base[i % len(base)]} #{i}" for i in range(OVERLAP_FROM + 3)]
    preds = engine.predict(texts)
    assert encoder.calls == 1 and len(threads) == 1
    assert next(iter(threads)).startswith("carebot-text")
    assert preds == engine.predict_embedded(texts, encoder.encode(texts))
    assert [p.category for p in preds[:3]] == [Category.CASE, Category.QUERY, Category.RAVE]

    threads.clear()
    engine.predict(texts[: OVERLAP_FROM - 1])  # small batches (live mentions) stay inline
    assert threads == {threading.current_thread().name}


def test_a_failure_in_the_text_side_thread_reaches_the_caller(fake_engine, monkeypatch) -> None:
    from bot.classify.engine import OVERLAP_FROM

    engine, _ = fake_engine

    def broken(text: str):  # type: ignore[no-untyped-def]
        raise RuntimeError("rules blew up")

    monkeypatch.setattr(engine.rules, "predict_one", broken)
    with pytest.raises(RuntimeError, match="rules blew up"):
        engine.predict(["text"] * OVERLAP_FROM)
