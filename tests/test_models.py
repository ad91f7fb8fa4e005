"""Golden parity and checkpoint checks for the LLaDA and Dream implementations."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import GOLDEN
from wavefilter_cli.errors import DeviceError, ModelError
from wavefilter_cli.models import DenseAttention, choose_placement, load_model
from wavefilter_cli.models.attention import sdpa

FAMILIES = ["llada-tiny", "dream-tiny"]


@pytest.mark.parametrize("name", FAMILIES)
def test_golden_logits_match(name):
    folder = GOLDEN / name
    model = load_model(str(folder), device="cpu", dtype="fp32")
    expected = load_file(folder / "expected.safetensors")
    with torch.no_grad():
        logits = model(expected["input_ids"]).logits
    assert logits.shape == expected["logits"].shape
    assert torch.allclose(logits, expected["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_logit_rows_subset(name):
    model = load_model(str(GOLDEN / name), device="cpu")
    ids = load_file(GOLDEN / name / "expected.safetensors")["input_ids"]
    with torch.no_grad():
        full = model(ids).logits
        rows = model(ids, logits_index=slice(10, 20)).logits
        gathered = model(ids, logits_index=torch.tensor([[3, 7], [0, 47]])).logits
    assert torch.equal(rows, full[:, 10:20])
    assert torch.equal(gathered[0], full[0, [3, 7]])
    assert torch.equal(gathered[1], full[1, [0, 47]])


def test_key_padding_masks_pads():
    """Left pads masked out of attention leave the real tokens' logits as they were (RoPE is shift-invariant)."""
    model = load_model(str(GOLDEN / "llada-tiny"), device="cpu")
    ids = torch.randint(0, 299, (1, 20))
    padded = torch.cat([torch.full((1, 5), 301), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 5, dtype=torch.bool), torch.ones(1, 20, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        alone = model(ids).logits
        with_pads = model(padded, attention=DenseAttention(mask)).logits[:, 5:]
        unmasked = model(padded).logits[:, 5:]
    assert torch.allclose(alone, with_pads, atol=1e-4)
    assert not torch.allclose(alone, unmasked, atol=1e-4)


def test_grouped_heads_match_repeated_heads():
    q, k, v = torch.randn(1, 4, 6, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    grouped = sdpa(q, k, v)
    repeated = sdpa(q, k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1))
    assert torch.allclose(grouped, repeated, atol=1e-6)


def _copy(name, tmp_path):
    target = tmp_path / name
    shutil.copytree(GOLDEN / name, target)
    (target / "expected.safetensors").unlink()
    return target


def test_unknown_model_type_names_file(tmp_path):
    folder = _copy("llada-tiny", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "gpt9"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="config.json: model_type 'gpt9' is not supported"):
        load_model(str(folder), device="cpu")


def test_missing_tensor_names_tensor(tmp_path):
    folder = _copy("dream-tiny", tmp_path)
    weights = load_file(folder / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ModelError, match="model.layers.1.mlp.up_proj.weight is missing"):
        load_model(str(folder), device="cpu")


def test_mismatched_shape_names_file_and_tensor(tmp_path):
    folder = _copy("llada-tiny", tmp_path)
    weights = load_file(folder / "model.safetensors")
    weights["model.transformer.blocks.0.q_proj.weight"] = torch.zeros(32, 64)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ModelError, match=r"model.safetensors: tensor model.transformer.blocks.0.q_proj.weight has shape \[32, 64\]"):
        load_model(str(folder), device="cpu")


def test_missing_config_and_folder(tmp_path):
    with pytest.raises(ModelError, match="config.json: missing"):
        load_model(str(tmp_path), device="cpu")
    with pytest.raises(ModelError, match="no such folder"):
        load_model(str(tmp_path / "nope"), device="cpu")


def test_offline_hub_id_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match="not in the Hugging Face cache and --offline is set"):
        load_model("nobody/no-such-model", device="cpu", offline=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_requested_without_gpu():
    with pytest.raises(DeviceError, match="no CUDA GPU is available"):
        choose_placement("cuda")


def test_placement_auto_on_cpu_is_fp32():
    if torch.cuda.is_available():
        pytest.skip("auto picks CUDA here")
    placement = choose_placement("auto", "auto")
    assert placement.device.type == "cpu"
    assert placement.dtype == torch.float32


def test_memory_estimate_rejects_oversized(monkeypatch):
    from wavefilter_cli.models import loading

    monkeypatch.setattr(loading, "available_memory", lambda device: 1000)
    with pytest.raises(DeviceError, match="GiB free"):
        load_model(str(GOLDEN / "llada-tiny"), device="cpu")
