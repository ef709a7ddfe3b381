"""Training memory, measured: parameters + gradients + optimizer state + the tensors autograd saves for
backward + the input batch (docs/neuroflux.md).

The activation part is measured, not estimated: a saved-tensor hook sees every tensor autograd keeps for
the backward pass, on any device. Storages are counted once (a ReLU output saved by two ops is one
tensor) and the model's own parameters and buffers are left to the static part. Fitting the counts at
two batch sizes gives the memory model M(b) = static + fixed + b * per_sample.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

MB = 1024 * 1024


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_slots(optimizer: str, momentum: float) -> int:
    """Tensors of optimizer state per parameter: SGD with momentum 1, plain SGD 0, Adam 2."""
    if optimizer == "adam":
        return 2
    return 1 if momentum > 0 else 0


def static_bytes(modules: list[nn.Module], optimizer_state_slots: int) -> int:
    """Parameters, their gradients and optimizer state, and buffers (BN statistics)."""
    params = {id(p): p for m in modules for p in m.parameters()}.values()
    buffers = {id(b): b for m in modules for b in m.buffers()}.values()
    trainable = [p for p in params if p.requires_grad]
    return tensor_bytes(params) + tensor_bytes(trainable) * (1 + optimizer_state_slots) + tensor_bytes(buffers)


class SavedTensorMeter:
    """Counts the bytes of the distinct storages autograd saves while active, per leaf module if asked."""

    def __init__(self, modules: list[nn.Module], per_layer: bool = False):
        self._excluded = {t.untyped_storage().data_ptr() for m in modules for t in [*m.parameters(), *m.buffers()]}
        self._modules = modules
        self._per_layer = per_layer
        self._seen: set[int] = set()
        self.bytes = 0
        self.layers: dict[str, int] = {}
        self._current = "(outside modules)"

    def reset(self) -> None:
        self._seen.clear()
        self.bytes = 0

    def include(self, tensor: torch.Tensor) -> int:
        """Count a tensor that is resident (saved for backward, or an input batch or output held by the
        caller) once, like every storage; returns the bytes it added (0 when already counted)."""
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer in self._excluded or pointer in self._seen:
            return 0
        self._seen.add(pointer)
        self.bytes += storage.nbytes()
        return storage.nbytes()

    def _pack(self, tensor: torch.Tensor):
        added = self.include(tensor)
        if self._per_layer and added:
            self.layers[self._current] = self.layers.get(self._current, 0) + added
        return tensor

    @contextlib.contextmanager
    def measuring(self):
        hooks = []
        if self._per_layer:
            for module in self._modules:
                for name, leaf in module.named_modules():
                    if not list(leaf.children()):
                        hooks.append(leaf.register_forward_pre_hook(self._enter(name)))
        try:
            with saved_tensors_hooks(self._pack, lambda tensor: tensor):
                yield self
        finally:
            for hook in hooks:
                hook.remove()

    def _enter(self, name: str):
        def hook(_module, _inputs):
            self._current = name

        return hook


@dataclass
class MemoryModel:
    """M(b) = static + fixed + b * per_sample, in bytes."""

    static: int  # parameters, gradients, optimizer state, buffers
    fixed: int  # saved tensors that do not grow with the batch (e.g. BN statistics)
    per_sample: float  # saved tensors and the input, per sample
    margin: int = 0
    layers: dict[str, float] = field(default_factory=dict)  # saved bytes per sample, by leaf module

    def peak(self, batch: int) -> int:
        return int(self.static + self.fixed + batch * self.per_sample + self.margin)

    def largest_batch(self, budget: int, candidates) -> int | None:
        fitting = [b for b in candidates if self.peak(b) <= budget]
        return max(fitting) if fitting else None


def saved_bytes_of_step(
    module: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, per_layer: bool = False
) -> tuple[int, dict[str, int]]:
    """Bytes autograd saves (plus the input batch) for one forward and loss of `module` in train mode."""
    meter = SavedTensorMeter([module], per_layer=per_layer)
    was_training = module.training
    module.train()
    state = _batchnorm_state(module)
    try:
        with meter.measuring():
            loss = F.cross_entropy(module(inputs), targets)
        del loss
    finally:
        _restore_batchnorm(module, state)
        module.train(was_training)
    meter.include(inputs)
    return meter.bytes, meter.layers


def fit_memory_model(
    module: nn.Module, input_shape: tuple[int, ...], num_classes: int, *, optimizer_state_slots: int,
    device: torch.device, margin_bytes: int = 0, small: int = 2, large: int = 4,
) -> MemoryModel:
    """Measure one training step's saved tensors at two batch sizes and fit the linear memory model."""
    counts, layers = [], []
    for batch in (small, large):
        inputs = torch.randn((batch, *input_shape), device=device)
        targets = torch.zeros(batch, dtype=torch.long, device=device) % max(num_classes, 1)
        saved, per_layer = saved_bytes_of_step(module, inputs, targets, per_layer=True)
        counts.append(saved)
        layers.append(per_layer)
    per_sample = (counts[1] - counts[0]) / (large - small)
    per_layer_sample = {name: (layers[1].get(name, 0) - layers[0].get(name, 0)) / (large - small) for name in layers[1]}
    return MemoryModel(
        static=static_bytes([module], optimizer_state_slots),
        fixed=max(int(counts[0] - small * per_sample), 0),
        per_sample=per_sample,
        margin=margin_bytes,
        layers=per_layer_sample,
    )


def _batchnorm_state(module: nn.Module) -> dict:
    return {name: tensor.clone() for name, tensor in module.state_dict().items()
            if name.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def _restore_batchnorm(module: nn.Module, state: dict) -> None:
    if state:
        module.load_state_dict(state, strict=False)
