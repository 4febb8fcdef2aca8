"""The encoder adapter file: the committed result of fine-tuning.

One safetensors file holds either full fine-tuning's change of every trained
matrix (int8 with one fp32 scale per row, ``full_delta``) and its trained vectors
(fp16), or LoRA factors (``rank > 0``); its metadata holds the settings and the
per-epoch dev figures. :func:`merge_adapter` folds it into the base model's weights
at load time (so inference costs what the base model costs), :func:`adapter_digest`
names the merged cache and the heads' encoder identity, :func:`soup_adapters`
averages several runs into one file. Training lives in :mod:`bot.classify.finetune`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from bot.classify.prepare import write_file_atomically

ADAPTER_FILE = "encoder-adapter.safetensors"
#: Key suffixes of a fully fine-tuned matrix in an adapter file: int8 change, row scales.
DELTA_Q, DELTA_SCALE = ".delta_i8", ".delta_scale"


def shipped_adapter() -> Path | None:
    """The committed adapter, or ``None`` when the package carries none."""
    path = Path(str(resources.files("bot.data").joinpath(ADAPTER_FILE)))
    return path if path.exists() else None


def adapter_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def merge_adapter(state: dict[str, Any], adapter: Path) -> dict[str, Any]:
    """Fold an adapter (LoRA factors or full fine-tuning's int8 changes) into a
    ``BertModel`` state dict (torch tensors), in place.

    Raises:
        ValueError: the adapter names a weight the model lacks, or shapes differ.
    """
    from safetensors import safe_open

    with safe_open(str(adapter), framework="pt") as fh:
        meta = fh.metadata() or {}
        alpha, rank = float(meta["alpha"]), int(meta["rank"])
        names = sorted({k.rsplit(".lora_", 1)[0] for k in fh.keys() if ".lora_" in k})
        for name in names:
            key = f"{name}.weight"
            if key not in state:
                raise ValueError(f"adapter {adapter.name}: model has no weight {key}")
            a = fh.get_tensor(f"{name}.lora_a").float()
            b = fh.get_tensor(f"{name}.lora_b").float()
            delta = (b @ a) * (alpha / rank)
            if delta.shape != state[key].shape:
                raise ValueError(
                    f"adapter {adapter.name}: {key} is {tuple(state[key].shape)}, "
                    f"adapter gives {tuple(delta.shape)}"
                )
            state[key] = state[key].float() + delta
        for key in fh.keys():
            if key.endswith(DELTA_Q):  # full fine-tuning: W + int8 delta · row scale
                name = key[: -len(DELTA_Q)]
                shape = tuple(fh.get_slice(key).get_shape())
                if name not in state or tuple(state[name].shape) != shape:
                    raise ValueError(f"adapter {adapter.name}: model has no weight {name} "
                                     "of that shape")
                scale = fh.get_tensor(f"{name}{DELTA_SCALE}").float()
                state[name] = state[name].float() + fh.get_tensor(key).float() * scale[:, None]
            elif ".lora_" not in key and not key.endswith(DELTA_SCALE):
                state[key] = fh.get_tensor(key).float()  # fully trained small tensors
    return state


def soup_adapters(adapters: Sequence[Path], base: dict[str, Any], out: Path) -> Path:
    """A uniform "model soup" (Wortsman et al. 2022): the weights of several
    fine-tuning runs of the same base model, averaged, saved as one full
    fine-tuning adapter (``rank`` 0) for ``base`` (a ``BertModel`` state dict).

    Runs from one pre-trained start that differ in seed or settings usually lie in
    one basin of the loss, and their mean often scores better than each run at no
    inference cost (the merged model has the base model's shape). The metadata keeps
    the first run's settings, each run's file digest, settings and last dev figures
    (``soup``), and an empty history.

    Raises:
        ValueError: fewer than two adapters, or one that does not fit ``base``.
    """
    from safetensors import safe_open

    from bot.classify.finetune import FinetuneSettings

    if len(adapters) < 2:
        raise ValueError("a soup needs at least two adapters")
    total: dict[str, Any] = {}
    count: dict[str, int] = {}
    runs: list[dict[str, Any]] = []
    for path in adapters:
        merged = merge_adapter(dict(base), path)
        for name, weight in merged.items():
            if weight is not base[name]:  # merge_adapter replaced it: a trained weight
                total[name] = total[name] + weight.float() if name in total else weight.float()
                count[name] = count.get(name, 0) + 1
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        history = json.loads(meta.pop("history", "[]"))
        runs.append({"file": path.name, "sha256": adapter_digest(path), **meta,
                     "last_epoch": history[-1] if history else None})
    n = len(adapters)  # a weight one run left alone counts at its base value
    mean = {name: (weight + (n - count[name]) * base[name].float()) / n
            for name, weight in total.items()}
    meta = {k: str(v) for k, v in runs[0].items()
            if k in {f.name for f in fields(FinetuneSettings)}}
    meta.update(rank="0", history="[]", soup=json.dumps(runs))
    write_adapter(out, full_delta(mean, base), meta)
    return out


def full_delta(trained: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Tensors to save for a fully fine-tuned model: each matrix as its change from
    ``base``, int8 with one scale per row (half the bytes of fp16 weights; the rounding
    is under 1 % of the change, itself 1–20 % of the weight); vectors as fp16 values."""
    import torch

    out: dict[str, Any] = {}
    for name, weight in trained.items():
        w = weight.detach().float()
        if w.ndim == 2:
            delta = w - base[name].float()
            scale = delta.abs().amax(1).clamp_min(1e-12) / 127
            out[f"{name}{DELTA_Q}"] = torch.round(delta / scale[:, None]).to(torch.int8)
            out[f"{name}{DELTA_SCALE}"] = scale.contiguous()
        else:
            out[name] = w.to(torch.float16).contiguous()
    return out


def write_adapter(out: Path, tensors: dict[str, Any], meta: dict[str, str]) -> None:
    """Write an adapter file atomically (a temp file renamed into place)."""
    from safetensors.torch import save_file

    write_file_atomically(out, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
