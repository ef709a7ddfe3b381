"""The checkpoint format: everything needed to rebuild the trained model, in types that
torch.load(..., weights_only=True) accepts (tensors, dicts, lists, strings, numbers).

`state_dict` holds only the model's own tensors, so it loads into a freshly built model the plain way:

    ckpt = torch.load("checkpoints/final.pt", weights_only=True)
    model = build_model(ckpt["model"], ckpt["input_shape"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])     # the masks are in ckpt["masks"], by parameter name

`load_checkpoint(path)` does the same with every check: the format, a SHA-256 checksum of the payload
(a flipped bit anywhere in the tensor data is found), finite values, and the masks against the weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from drive_runner.errors import CheckpointError, MaskError
from drive_runner.memory.heads import ExitModel, build_head
from drive_runner.models import build_model
from drive_runner.pruning.masks import MaskEngine
from drive_runner.structured import architecture

FORMAT = "drive-runner/checkpoint-v2"
EXIT_FORMAT = "drive-runner/exit-v2"
TENSOR_SECTIONS = ("state_dict", "masks")


def payload_checksum(payload: dict) -> str:
    """SHA-256 over every tensor (name, dtype, shape and bytes, in name order) and the metadata."""
    digest = hashlib.sha256()
    metadata = {k: v for k, v in payload.items() if k not in (*TENSOR_SECTIONS, "checksum")}
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    for section in TENSOR_SECTIONS:
        tensors = payload.get(section) or {}
        for name in sorted(tensors):
            tensor = tensors[name].detach().cpu().contiguous().reshape(-1)
            digest.update(f"{section}/{name}/{tensor.dtype}/{tuple(tensors[name].shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy())
    return digest.hexdigest()


def _payload(format_name: str, model_cfg: dict, model: nn.Module, input_shape, num_classes: int, **extra) -> dict:
    """What every checkpoint holds: the format, how to build the model, the weights and their checksum."""
    payload = {
        "format": format_name,
        "model": model_cfg,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        **extra,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    payload["checksum"] = payload_checksum(payload)
    return payload


def read_checkpoint(path: str | Path, format_name: str = FORMAT) -> dict:
    """The payload of a checkpoint file, refused with one line unless it is readable, of this format,
    finite and unchanged since it was written."""
    path = Path(path)
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as error:  # noqa: BLE001 - truncated, empty, not a torch file, or refused by weights_only
        empty = path.is_file() and path.stat().st_size == 0
        reason = "the file is empty" if empty else f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason})") from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path} is not a drive-runner checkpoint (it holds a {type(payload).__name__})")
    if payload["format"] != format_name:
        raise CheckpointError(f"{path} is a {payload['format']} file, not a {format_name} checkpoint")
    for section in TENSOR_SECTIONS:
        for name, tensor in (payload.get(section) or {}).items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"{path}: {name} holds NaN or infinite values; the checkpoint is corrupted")
    if payload.get("checksum") != payload_checksum(payload):
        raise CheckpointError(f"{path}: checksum mismatch, the data changed after it was written (a corrupted file)")
    return payload


def checkpoint_payload(model_cfg: dict, model: nn.Module, engine: MaskEngine, input_shape, num_classes: int) -> dict:
    return _payload(
        FORMAT, model_cfg, model, input_shape, num_classes,
        architecture=architecture.describe(model),  # channels per layer: a shrunken model rebuilds from it
        masks=engine.mask_state(),
    )


def load_checkpoint(path: str | Path) -> tuple[nn.Module, MaskEngine]:
    """The model of a checkpoint, rebuilt to its saved widths, with its masks; every pruned weight must
    be zero and the survivors must number what the masks say."""
    payload = read_checkpoint(path, FORMAT)
    model = _fresh_model(payload)
    architecture.apply(model, payload["architecture"])
    model.load_state_dict(payload["state_dict"])
    engine = MaskEngine(model, exclude=[n for n in _prunable_names(model) if n not in payload["masks"]])
    engine.load_masks(payload["masks"])
    try:
        engine.verify(expected_survivors=sum(int(m.sum()) for m in payload["masks"].values()))
    except MaskError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return model, engine


def _fresh_model(payload: dict) -> nn.Module:
    return build_model(payload["model"], tuple(payload["input_shape"]), payload["num_classes"])


def _prunable_names(model: nn.Module) -> list[str]:
    return [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def exit_checkpoint_payload(model_cfg: dict, exit_model: nn.Module, spec: dict, input_shape, num_classes: int) -> dict:
    """NeuroFlux's streamlined model: the first `spec["units"]` units of the network and one head."""
    # spec: {"units": n, "head": head spec, or None for the model's own head}
    return _payload(EXIT_FORMAT, model_cfg, exit_model, input_shape, num_classes, exit=spec)


def load_exit_model(path: str | Path) -> nn.Module:
    """A NeuroFlux exit model, standalone: rebuilt from the config and the exit description, in eval mode."""
    payload = read_checkpoint(path, EXIT_FORMAT)
    units, own_head = _fresh_model(payload).units()
    spec = payload["exit"]
    head = build_head(spec["head"]) if spec["head"] else own_head
    exit_model = ExitModel(units[: spec["units"]], head)
    exit_model.load_state_dict(payload["state_dict"])
    return exit_model.eval()
