"""How a run uses its device: which device, autocast, memory format, cuDNN autotuning and compilation.

Every choice here changes speed, not the method: bf16 autocast and channels_last only change how the
same arithmetic is laid out and rounded, and torch.compile traces the same modules. The masks stay
plain buffers and gradient hooks on the original parameters, so they hold under all of them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


def resolve_device(hardware, local_rank: int = 0) -> torch.device:
    """The device `hardware.device` names (validation has checked that it exists); under DDP each
    process takes the GPU of its local rank."""
    kind = hardware.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device("cuda", local_rank) if kind == "cuda" else torch.device(kind)


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast on the run's device (CUDA, or a CPU with bf16 kernels); full precision otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def wants_data_on_device(hardware, device: torch.device) -> bool:
    """`hardware.data_on_device`, with null meaning: on CUDA, unless a memory budget is set (the budget
    caps the allocator for training, and a dataset on the device would count against it)."""
    if hardware.data_on_device is None:
        return device.type == "cuda" and hardware.memory_budget_mb is None
    return bool(hardware.data_on_device)


def has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


@dataclass(frozen=True)
class Acceleration:
    """The speed settings of one run, resolved against its device and model."""

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False  # NHWC activations and weights (tensor-core convolutions on CUDA)
    compile_backend: str | None = None  # torch.compile backend; None = eager
    data_on_device: bool = False  # in-memory datasets held on the device, batches made there

    @classmethod
    def from_config(cls, hardware, device: torch.device, model: nn.Module) -> "Acceleration":
        on_cuda = device.type == "cuda"
        channels_last = hardware.channels_last
        return cls(
            device=device,
            precision=hardware.precision,
            channels_last=(on_cuda if channels_last is None else bool(channels_last)) and has_convolutions(model),
            compile_backend=hardware.compile_backend if hardware.compile else None,
            data_on_device=wants_data_on_device(hardware, device),
        )

    def configure_backends(self, hardware) -> None:
        """cuDNN autotuning: a search per input shape on the first steps, then the fastest kernels (a
        process-wide switch; batch shapes are fixed within a phase, so the search is paid once)."""
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = bool(hardware.cudnn_benchmark)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model in the memory format its inputs will have (in place; returns it)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def prepare_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.device, non_blocking=True)
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def forward_module(self, module: nn.Module) -> nn.Module:
        """What training and evaluation call: the module itself, or its compiled form (which shares its
        parameters and buffers, so masks, hooks and checkpoints see one model)."""
        if self.compile_backend is None:
            return module
        return torch.compile(module, backend=self.compile_backend)

    def autocast(self):
        return autocast_context(self.device, self.precision)
