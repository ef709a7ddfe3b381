"""What scoring rules share: parameter and mask lookup, BN handling while scoring, loss gradients."""

from __future__ import annotations

import contextlib
import copy
from enum import StrEnum
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from drive_runner.pruning.masks import MASK_SUFFIX


class ScoreDtype(StrEnum):
    """The precision a rule scores in, where it offers the choice."""

    float32 = "float32"
    float64 = "float64"


DTYPES = {"float32": torch.float32, "float64": torch.float64}


class BNMode(StrEnum):
    """How BatchNorm normalises while a rule scores: with its running statistics, or the scoring batch's."""

    eval = "eval"
    train = "train"


def named_params(model: nn.Module, names: list[str]) -> list[nn.Parameter]:
    params = dict(model.named_parameters())
    return [params[name] for name in names]


def current_masks(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """The mask buffer beside each parameter, or all-ones for a model without masks."""
    buffers = dict(model.named_buffers())
    params = dict(model.named_parameters())
    return {name: buffers.get(f"{name}{MASK_SUFFIX}", torch.ones_like(params[name], dtype=torch.bool)) for name in names}


def score_dtype(tensor: torch.Tensor) -> torch.dtype:
    """The precision scores are computed in: the tensor's own, but never below float32 (bf16 or fp16
    weights would tie many scores that float32 tells apart)."""
    return torch.promote_types(tensor.dtype, torch.float32)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def in_precision(model: nn.Module, batches: list, dtype: str) -> tuple[nn.Module, list]:
    """The model and batches to score in `dtype`: themselves where the model already computes in it, else a
    copy of the model (masks and BN buffers included) and the inputs cast, so scoring never changes the model."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    wanted = DTYPES[dtype]
    if all(p.dtype == wanted for p in model.parameters()):
        return model, batches
    return copy.deepcopy(model).to(wanted), [(inputs.to(wanted), targets) for inputs, targets in batches]


@contextlib.contextmanager
def batchnorm_mode(model: nn.Module, mode: str):
    """Score with BN in `eval` mode (running statistics) or `train` mode (batch statistics); in train
    mode the running statistics are snapshotted and restored, so scoring leaves no trace on the model."""
    was_training = model.training
    saved = {}
    if mode == "train":
        model.train()
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                saved[name] = {k: v.clone() for k, v in module.named_buffers(recurse=False)}
    elif mode == "eval":
        model.eval()
    else:
        raise ValueError(f"bn_mode must be 'train' or 'eval', got {mode!r}")
    try:
        yield
    finally:
        modules = dict(model.named_modules())
        with torch.no_grad():
            for name, buffers in saved.items():
                for key, value in buffers.items():
                    getattr(modules[name], key).copy_(value)
        model.train(was_training)


def loss_gradients(model: nn.Module, names: list[str], batches: Iterable) -> list[torch.Tensor]:
    """Gradients of the mean cross-entropy over all examples of `batches` (summed per batch, so
    chunked data gives the same gradient as one big batch)."""
    params = named_params(model, names)
    device = model_device(model)
    batches = list(batches)
    total = sum(len(targets) for _, targets in batches)
    grads = [torch.zeros_like(p) for p in params]
    for inputs, targets in batches:
        inputs, targets = inputs.to(device), targets.to(device)
        loss = F.cross_entropy(model(inputs), targets, reduction="sum") / total
        for acc, grad in zip(grads, torch.autograd.grad(loss, params)):
            acc.add_(grad)
    return grads
