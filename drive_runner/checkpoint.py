"""The checkpoint format: everything needed to rebuild the trained model, in types that
torch.load(..., weights_only=True) accepts (tensors, dicts, lists, strings, numbers)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from drive_runner.memory.heads import ExitModel, build_head
from drive_runner.models import build_model
from drive_runner.pruning.masks import MaskEngine
from drive_runner.structured import architecture

FORMAT = "drive-runner/checkpoint-v1"
EXIT_FORMAT = "drive-runner/exit-v1"


def _payload(format_name: str, model_cfg: dict, model: nn.Module, input_shape, num_classes: int, **extra) -> dict:
    """What every checkpoint holds: the format, how to build the model, and the weights."""
    return {
        "format": format_name,
        "model": model_cfg,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        **extra,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def _load(path: str | Path, format_name: str) -> tuple[dict, nn.Module]:
    """The payload and a freshly built model of its config (still to be reshaped and loaded)."""
    payload = torch.load(path, weights_only=True, map_location="cpu")
    if payload.get("format") != format_name:
        raise ValueError(f"{path} is not a {format_name} checkpoint")
    return payload, build_model(payload["model"], tuple(payload["input_shape"]), payload["num_classes"])


def checkpoint_payload(model_cfg: dict, model: nn.Module, engine: MaskEngine, input_shape, num_classes: int) -> dict:
    return _payload(
        FORMAT, model_cfg, model, input_shape, num_classes,
        architecture=architecture.describe(model),  # channels per layer: a shrunken model rebuilds from it
        masks=engine.mask_state(),
    )


def load_checkpoint(path: str | Path) -> tuple[nn.Module, MaskEngine]:
    """The model of a checkpoint, rebuilt to its saved widths, with its masks, checked (METHODS.md §0.5)."""
    payload, model = _load(path, FORMAT)
    architecture.apply(model, payload["architecture"])
    engine = MaskEngine(model, exclude=[n for n in _prunable_names(model) if n not in payload["masks"]])
    model.load_state_dict(payload["state_dict"])
    engine.verify(expected_survivors=sum(int(m.sum()) for m in payload["masks"].values()))
    return model, engine


def _prunable_names(model: nn.Module) -> list[str]:
    return [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def exit_checkpoint_payload(model_cfg: dict, exit_model: nn.Module, spec: dict, input_shape, num_classes: int) -> dict:
    """NeuroFlux's streamlined model: the first `spec["units"]` units of the network and one head."""
    # spec: {"units": n, "head": head spec, or None for the model's own head}
    return _payload(EXIT_FORMAT, model_cfg, exit_model, input_shape, num_classes, exit=spec)


def load_exit_model(path: str | Path) -> nn.Module:
    """A NeuroFlux exit model, standalone: rebuilt from the config and the exit description, in eval mode."""
    payload, model = _load(path, EXIT_FORMAT)
    units, own_head = model.units()
    spec = payload["exit"]
    head = build_head(spec["head"]) if spec["head"] else own_head
    exit_model = ExitModel(units[: spec["units"]], head)
    exit_model.load_state_dict(payload["state_dict"])
    return exit_model.eval()
