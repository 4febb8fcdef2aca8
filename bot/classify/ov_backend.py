"""The OpenVINO backend's pieces: its export of the encoder, the word-embedding rows it
reads per batch, and the CPU and allocator facts it depends on.

:class:`bot.classify.encoder.Encoder` serves it (``backend="openvino"``, or ``"auto"`` on
CPUs with AMX); ``docs/MODEL_CARD.md`` has the measurements behind each choice here.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

#: The OpenVINO export of a prepared model: a subdirectory holding the transformer as
#: OpenVINO IR (fp16 weights, run in bf16 on CPUs with AMX) and the word-embedding table
#: as a float16 array whose rows are read per batch. Bump the name when the recipe changes.
OPENVINO_DIR = "openvino-v1"
OPENVINO_MODEL = "encoder.xml"
OPENVINO_EMBEDDINGS = "word_embeddings.f16.npy"


def prepare_openvino(model_dir: Path) -> Path:
    """Export a prepared ``transformers`` encoder for OpenVINO (idempotent).

    The graph takes ``inputs_embeds`` rather than token ids: the 250,037 x 384
    word-embedding table stays out of it, saved as a float16 array whose rows
    the encoder reads per batch (:class:`EmbeddingRows`). Inside the graph
    OpenVINO folds a lookup table into fp32, which alone cost 384 MB of RSS.
    Everything else (position embeddings, the 12 blocks, mean pooling, L2 norm)
    is one graph with fp16 weights; on a CPU with AMX it runs in bf16
    (embeddings at cosine >= 0.995 to fp32, tested).

    Returns:
        The directory holding ``encoder.xml``/``.bin`` and the embedding table.
    """
    target = model_dir / OPENVINO_DIR
    if (target / OPENVINO_MODEL).exists():
        return target
    import openvino as ov
    import torch
    from transformers import AutoModel

    from bot.classify.prepare import pooled, write_dir_atomically

    net = AutoModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager")
    net = net.eval()
    table = net.embeddings.word_embeddings.weight.detach().numpy().astype(np.float16)

    def write(tmp: Path) -> None:
        onnx_path = tmp / "encoder-embeds.onnx"
        axes = {0: "batch", 1: "tokens"}
        embeds = torch.zeros((2, 5, int(net.config.hidden_size)))
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
        torch.onnx.export(
            pooled(net, embeds=True), (embeds, mask), str(onnx_path),
            input_names=["inputs_embeds", "attention_mask"], output_names=["embedding"],
            opset_version=17, dynamo=False,
            dynamic_axes={"inputs_embeds": axes, "attention_mask": axes, "embedding": {0: "batch"}},
        )  # fmt: skip
        ov.save_model(ov.convert_model(str(onnx_path)), str(tmp / OPENVINO_MODEL))
        onnx_path.unlink()
        np.save(tmp / OPENVINO_EMBEDDINGS, table)

    write_dir_atomically(target, write, marker=OPENVINO_MODEL)
    return target


@functools.cache
def cpu_has_amx() -> bool:
    """True on x86 CPUs with AMX bf16 tiles (Intel Sapphire Rapids and later)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return " amx_bf16" in flags


class EmbeddingRows:
    """Rows of a float16 ``.npy`` table, read from the file on demand.

    ``pread`` of just the rows a batch needs: a memory map of the 192 MB table
    became almost wholly resident within one batch (the kernel maps the pages
    around each faulted row), while these reads leave it in the page cache.
    """

    def __init__(self, path: Path) -> None:
        header = np.load(path, mmap_mode="r")  # reads the header only
        if header.dtype != np.float16 or header.ndim != 2 or not header.flags.c_contiguous:
            raise ValueError(f"{path}: expected a C-ordered 2-D float16 table")
        self.shape = (int(header.shape[0]), int(header.shape[1]))
        self._offset = int(header.offset)
        del header
        self._row_bytes = self.shape[1] * 2
        self._fd = os.open(path, os.O_RDONLY)

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        """float32 ``ids.shape + (dim,)``."""
        unique, inverse = np.unique(ids, return_inverse=True)
        size, base, fd = self._row_bytes, self._offset, self._fd
        raw = b"".join(os.pread(fd, size, base + int(i) * size) for i in unique)
        rows = np.frombuffer(raw, dtype=np.float16).reshape(len(unique), self.shape[1])
        return rows.astype(np.float32)[inverse.reshape(ids.shape)]

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def return_freed_buffers() -> None:
    """Have glibc give large freed blocks back to the system at once.

    OpenVINO allocates its activation buffers anew for each input shape; with
    glibc's adaptive threshold these came from the heap after a few batches and
    stayed there, and peak RSS over 1,000 tweets went from 643 to 742 MB.
    ``M_MMAP_THRESHOLD`` fixed at 128 KiB serves every block above it with its
    own mapping, released on free. No-op where glibc is not the allocator.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
