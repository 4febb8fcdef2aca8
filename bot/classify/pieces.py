"""The XLM-R tokenizer of the ONNX and OpenVINO backends, on ``sentencepiece``.

The ``tokenizers`` Unigram model of the 250,002-piece XLM-R vocabulary takes
271 MB of RSS by itself, most of the serving process's memory. ``sentencepiece``
(the library XLM-R's vocabulary was made with) holds the same pieces and scores
in 55 MB and tokenised 64,878 tweets 4.5x as fast (0.95 s against 4.27 s).

:func:`prepare_pieces` writes a sentencepiece model from the prepared
``tokenizer.json`` (same pieces, ids and scores) next to it, once. Text is
normalised by the ``tokenizer.json``'s own normaliser (``tokenizers``' Rust code,
without its model), then segmented by sentencepiece: the ids equal the
``tokenizers`` ids except where two segmentations score exactly the same (such as
"...." as "." + "..." or "..." + "."), which the two libraries break differently:
32 of those 64,878 texts, each the same pieces in another order (tested).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.classify.prepare import write_file_atomically

PIECES_FILE = "tokenizer-pieces.model"
#: ``tokenizer.json`` with a one-piece vocabulary: its normaliser, loaded in
#: milliseconds (the full file is a 16 MB JSON parse, 0.4 s and 54 MB at each start).
NORMALIZER_FILE = "tokenizer-normalizer.json"


def prepare_pieces(model_dir: Path) -> tuple[Path, Path]:
    """The sentencepiece model for ``model_dir/tokenizer.json`` (a Unigram vocabulary
    with ``<s>``/``<pad>``/``</s>``/``<unk>`` at ids 0-3) and that file's normaliser,
    written once beside it."""
    pieces_path, normalizer_path = model_dir / PIECES_FILE, model_dir / NORMALIZER_FILE
    if pieces_path.exists() and normalizer_path.exists():
        return pieces_path, normalizer_path
    from sentencepiece import sentencepiece_model_pb2

    pb: Any = sentencepiece_model_pb2  # protobuf-generated: no static attributes
    spec = json.loads((model_dir / "tokenizer.json").read_text("utf-8"))
    model = spec["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"{model_dir / 'tokenizer.json'}: not a Unigram vocabulary")
    piece_type = pb.ModelProto.SentencePiece
    special = {0: piece_type.CONTROL, 1: piece_type.CONTROL, 2: piece_type.CONTROL,
               3: piece_type.UNKNOWN}  # fmt: skip
    added = {t["content"] for t in spec.get("added_tokens", ())}
    proto = pb.ModelProto()
    for i, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = special.get(
            i, piece_type.USER_DEFINED if piece in added else piece_type.NORMAL
        )
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(model["vocab"])
    proto.trainer_spec.bos_id, proto.trainer_spec.pad_id = 0, 1
    proto.trainer_spec.eos_id, proto.trainer_spec.unk_id = 2, int(model.get("unk_id", 3))
    # The tokenizer.json normaliser runs first (PieceTokenizer); here only the
    # Metaspace step: "▁" for spaces and one in front of the text.
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    spec["model"] = {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}
    normalizer = json.dumps(spec).encode("utf-8")
    write_file_atomically(normalizer_path, lambda tmp: tmp.write_bytes(normalizer))
    pieces = proto.SerializeToString()
    write_file_atomically(pieces_path, lambda tmp: tmp.write_bytes(pieces))
    return pieces_path, normalizer_path


class PieceTokenizer:
    """``encode_batch(texts)`` -> ids with ``<s>`` … ``</s>``, at most ``max_tokens``."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        import sentencepiece
        from tokenizers import Tokenizer

        pieces_path, normalizer_path = prepare_pieces(model_dir)
        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(pieces_path))
        # The same normaliser, loaded without the 271 MB vocabulary.
        self._normalizer: Any = Tokenizer.from_file(str(normalizer_path)).normalizer
        self.bos, self.eos = self._sp.bos_id(), self._sp.eos_id()
        self.pad_id = self._sp.pad_id()
        self.max_tokens = max_tokens

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        normalise = self._normalizer.normalize_str if self._normalizer is not None else str
        pieces: list[list[int]] = self._sp.encode([normalise(t) for t in texts])
        keep = self.max_tokens - 2
        return [[self.bos, *ids[:keep], self.eos] for ids in pieces]


class ReferenceTokenizer:
    """The same interface on the ``tokenizers`` library (271 MB more RSS): the
    fallback when the sentencepiece model cannot be written (a read-only cache)."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.enable_truncation(max_tokens)
        self.pad_id = int(self._tok.token_to_id("<pad>") or 1)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(e.ids) for e in self._tok.encode_batch(list(texts))]
