"""Find a checkpoint, check it against its architecture, choose device and dtype, and load it.

``load_model`` accepts a local folder, a hub id already in the Hugging Face
cache (or downloadable when the user is online), or ``builtin`` for the model
shipped inside the package. Every failure a user can fix raises a
``ModelError`` (exit 5) or ``DeviceError`` (exit 6) naming the file, tensor
or number involved.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from wavefilter_cli.config import BUILTIN_DIR, BUILTIN_NAME
from wavefilter_cli.errors import DeviceError, ModelError
from wavefilter_cli.models.dream import DreamConfig, DreamModel
from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM

logger = logging.getLogger(__name__)


#: model_type in config.json -> (config class, model class).
ARCHITECTURES = {
    "llada": (LLaDAConfig, LLaDAModelLM),
    "Dream": (DreamConfig, DreamModel),
}

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class Placement:
    """The device and dtype chosen for the model; ``reason`` is shown to the user on one stderr line."""

    device: torch.device
    dtype: torch.dtype
    reason: str


def resolve_checkpoint(name: str, offline: bool = False) -> Path:
    """Return the local folder of ``name``: ``builtin``, a folder, or a hub id."""
    if name == BUILTIN_NAME:
        if not (BUILTIN_DIR / "config.json").is_file() or not any(BUILTIN_DIR.glob("*.safetensors")):
            raise ModelError(
                f"the built-in model is missing from {BUILTIN_DIR} (a source checkout needs its weights committed); "
                "pass --model with a local LLaDA or Dream checkpoint folder"
            )
        return BUILTIN_DIR
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"--model {name}: not a folder; point it at a checkpoint folder holding config.json")
        return path
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise ModelError(f"--model {name}: no such folder, and not a hub id of the form owner/name")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with transformers
        raise ModelError(f"--model {name}: huggingface_hub is not installed, so hub ids cannot be resolved") from exc
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except LocalEntryNotFoundError:
        if offline:
            raise ModelError(
                f"--model {name}: not in the Hugging Face cache and --offline is set; "
                "download it once online or pass the checkpoint folder"
            ) from None
    except Exception as exc:  # noqa: BLE001 - hub errors vary across versions
        raise ModelError(f"--model {name}: cannot read it from the Hugging Face cache ({exc})") from exc
    logger.info("downloading %s from the Hugging Face hub", name)
    try:
        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"--model {name}: download failed ({exc}); check the id and your network, or pass a local folder") from exc


def read_config(folder: Path):
    """Build the config object of the checkpoint in ``folder``."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(f"{config_file}: missing; a checkpoint folder needs config.json beside its weights")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config_file}: not valid JSON ({exc})") from exc
    model_type = raw.get("model_type")
    if model_type not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(f"{config_file}: model_type {model_type!r} is not supported; supported model types: {known}")
    config_cls, _ = ARCHITECTURES[model_type]
    config = config_cls.from_pretrained(folder)
    unsupported = config.unsupported_features()
    if unsupported:
        raise ModelError(f"{config_file}: settings not implemented here: {', '.join(unsupported)}")
    return config


def checkpoint_tensors(folder: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Map every tensor name in the folder's safetensors files to (file name, shape), reading headers only."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = [p.name for p in sorted(folder.glob("*.safetensors")) if p.name != "expected.safetensors"]
    if not files:
        raise ModelError(f"{folder}: no *.safetensors weights found; official checkpoints ship safetensors files")
    tensors = {}
    for file_name in files:
        path = folder / file_name
        if not path.is_file():
            raise ModelError(f"{path}: missing, but model.safetensors.index.json lists it")
        try:
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():
                    tensors[key] = (file_name, tuple(handle.get_slice(key).get_shape()))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise ModelError(f"{path}: unreadable safetensors file ({exc})") from exc
    return tensors


def check_tensors(folder: Path, config, model_cls) -> int:
    """Compare checkpoint tensor names and shapes with the architecture; return the parameter count."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in model_cls(config).state_dict().items()}
    found = checkpoint_tensors(folder)
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ModelError(f"{folder}: tensor {missing[0]} is missing from the checkpoint ({len(missing)} missing in all)")
    for name, shape in expected.items():
        file_name, got = found[name]
        if got != shape:
            raise ModelError(f"{folder / file_name}: tensor {name} has shape {list(got)}, config.json implies {list(shape)}")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        logger.warning("%s: ignoring %d tensors the architecture does not use, e.g. %s", folder, len(unexpected), unexpected[0])
    return sum(int(torch.Size(shape).numel()) for shape in expected.values())


def choose_placement(device: str = "auto", dtype: str = "auto") -> Placement:
    """Resolve ``--device`` and ``--dtype``; a requested GPU that is absent is an error, never a silent CPU run."""
    if dtype != "auto" and dtype not in DTYPES:
        raise DeviceError(f"--dtype {dtype}: unknown; use auto, bf16, fp16 or fp32")
    if device == "auto":
        if torch.cuda.is_available():
            dev, reason = torch.device("cuda"), "CUDA is available"
        else:
            dev, reason = torch.device("cpu"), "no CUDA GPU found"
    elif device == "cpu":
        dev, reason = torch.device("cpu"), "requested with --device cpu"
    elif device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device}: no CUDA GPU is available here; use --device cpu or auto")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present; use cuda:0")
        reason = f"requested with --device {device}"
    elif device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("--device mps: Apple MPS is not available here; use --device cpu or auto")
        dev, reason = torch.device("mps"), "requested with --device mps"
    else:
        raise DeviceError(f"--device {device}: unknown; use auto, cpu, cuda, cuda:N or mps")
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        torch_dtype = DTYPES[dtype]
    return Placement(dev, torch_dtype, reason)


def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device``, or None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def load_model(path_or_id: str, device: str = "auto", dtype: str = "auto", offline: bool | None = None):
    """Load a LLaDA or Dream checkpoint; returns the model in eval mode on the chosen device.

    The model's ``placement`` attribute records the device, dtype and the
    reason for the choice.
    """
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    folder = resolve_checkpoint(path_or_id, offline)
    config = read_config(folder)
    _, model_cls = ARCHITECTURES[config.model_type]
    placement = choose_placement(device, dtype)
    params = check_tensors(folder, config, model_cls)
    need = params * torch.tensor([], dtype=placement.dtype).element_size()
    free = available_memory(placement.device)
    if free is not None and need > free:
        raise DeviceError(
            f"{folder}: the weights need {need / 2**30:.1f} GiB in {str(placement.dtype).removeprefix('torch.')} "
            f"but {placement.device} has {free / 2**30:.1f} GiB free; use a smaller --dtype or another --device"
        )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = model_cls.from_pretrained(folder, config=config, dtype=placement.dtype)
    model.to(placement.device).eval()
    model.placement = placement
    model.checkpoint_dir = folder
    return model


def load_tokenizer(folder: Path, config=None):
    """Load the checkpoint's tokenizer through ``AutoTokenizer`` (chat template included).

    Passing the model's ``config`` spares transformers from re-reading
    config.json, which it cannot map to a model type it does not know.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, config=config)
    except Exception as exc:  # noqa: BLE001 - tokenizer loading raises many types
        reason = " ".join(str(exc).split())[:200]
        raise ModelError(f"{folder}: cannot load the tokenizer ({reason}); the folder needs tokenizer.json or its files") from exc
