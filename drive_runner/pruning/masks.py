"""The mask engine every unstructured method goes through (docs/conventions.md).

Masks are boolean buffers registered beside each prunable tensor (`<attr>_keep_mask`), so they move
with the model between devices. They are not persistent: the model's state_dict holds only its own
tensors (it loads into a freshly built model), checkpoints store the masks beside it, and the names
stay clear of torch.nn.utils.prune's `<attr>_mask`. Three mechanisms keep pruned weights exactly zero:
a gradient hook multiplies the gradient by the mask, an optimizer post-step hook multiplies the
weight by the mask (covering weight decay, momentum and Nesterov), and a mask change zeroes both
the weights and the optimizer state of the newly pruned entries. Both hooks multiply by a copy of
the mask in the tensor's own dtype, rebuilt only when the mask changes, and skip all-ones masks: a
bool-times-float product per step would cost as much as a small network's forward pass.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from drive_runner import distributed
from drive_runner.errors import ConfigError, MaskError

PRUNABLE_MODULES = (nn.Conv2d, nn.Linear)
MASK_SUFFIX = "_keep_mask"


@dataclass(frozen=True)
class PrunableTensor:
    """One prunable parameter: `name` as in model.named_parameters(), owned by `module` as `attr`."""

    name: str
    module: nn.Module
    attr: str

    @property
    def param(self) -> nn.Parameter:
        return getattr(self.module, self.attr)

    @property
    def mask(self) -> torch.Tensor:
        return getattr(self.module, f"{self.attr}{MASK_SUFFIX}")


class _Multipliers:
    """Each mask as a multiplier in the dtype of what it multiplies, or None where nothing is pruned.

    Keyed by the mask tensor's identity and in-place version counter, so any write to a mask (selection,
    loading, ablation, a move to another device) is picked up without the writers having to say so.
    """

    def __init__(self):
        self._cache: dict[str, tuple] = {}

    def get(self, target: PrunableTensor, like: torch.Tensor) -> torch.Tensor | None:
        mask = target.mask
        key = (id(mask), mask._version, like.dtype, like.device)
        cached = self._cache.get(target.name)
        if cached is None or cached[0] != key:
            multiplier = None if bool(mask.all()) else mask.to(dtype=like.dtype, device=like.device)
            cached = (key, multiplier, mask)  # holding the mask keeps its id from being reused
            self._cache[target.name] = cached
        return cached[1]


def find_prunable(model: nn.Module, exclude: Iterable[str] = (), include_bias: bool = False) -> list[PrunableTensor]:
    """The weights (and optionally biases) of every Conv2d and Linear, minus the excluded names.

    An excluded name that matches no prunable tensor is a config error: a typo would otherwise
    silently prune a layer the user meant to keep.
    """
    found = []
    for module_name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_MODULES):
            continue
        attrs = ["weight"] + (["bias"] if include_bias and module.bias is not None else [])
        for attr in attrs:
            found.append(PrunableTensor(f"{module_name}.{attr}" if module_name else attr, module, attr))
    names = {t.name for t in found}
    unknown = sorted(set(exclude) - names)
    if unknown:
        raise ConfigError(
            "prune.exclude", f"no prunable tensor named {', '.join(unknown)}; prunable: {', '.join(sorted(names))}"
        )
    excluded = set(exclude)
    return [t for t in found if t.name not in excluded]


def keep_count(total: int, density: float) -> int:
    """Survivors for a density target: round(N * d), the exact count every scheduled method uses."""
    return int(round(total * density))


def select_top(
    scores: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    keep: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """New masks keeping exactly `keep` of the currently unpruned entries, highest score first.

    Already-pruned entries get score -inf, so they can never come back (monotone masks). Ties at the
    cut are broken by a seeded random permutation of the tied entries (equivalent to "permute, then
    stable sort"), found with a k-th value search instead of a full sort. Non-finite scores among
    unpruned entries abort with the tensor's name, since a NaN ranking would silently decide the mask.
    Selection runs on the CPU in float64, whatever the model's device and dtype.
    """
    names = list(masks)
    alive = torch.cat([masks[name].detach().reshape(-1).cpu() for name in names])
    values = torch.cat([scores[name].detach().reshape(-1).cpu().to(torch.float64) for name in names])
    broken = alive & ~torch.isfinite(values)
    if broken.any():
        name = names[_owner(masks, names, int(broken.nonzero()[0]))]
        raise MaskError(f"non-finite pruning scores in {name} (NaN or inf); the scorer overflowed or diverged")
    remaining = int(alive.sum())
    if not 0 <= keep <= remaining:
        raise MaskError(f"cannot keep {keep} weights: only {remaining} survive (masks are monotone)")

    kept = torch.zeros(values.numel(), dtype=torch.bool)
    kept[_top_indices(values.masked_fill_(~alive, float("-inf")), keep, generator)] = True
    new_masks, offset = {}, 0
    for name in names:
        mask = masks[name]
        new_masks[name] = kept[offset : offset + mask.numel()].reshape(mask.shape).to(mask.device)
        offset += mask.numel()
    return new_masks


def _owner(masks: Mapping[str, torch.Tensor], names: list[str], flat_index: int) -> int:
    """Which tensor a position in the concatenation of all masks belongs to."""
    offset = 0
    for index, name in enumerate(names):
        offset += masks[name].numel()
        if flat_index < offset:
            return index
    raise IndexError(flat_index)


def _top_indices(values: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of the `keep` largest values, ties at the threshold decided by a seeded permutation."""
    if keep == 0:
        return torch.empty(0, dtype=torch.long)
    threshold = torch.kthvalue(values, values.numel() - keep + 1).values
    above = (values > threshold).nonzero().squeeze(1)
    tied = (values == threshold).nonzero().squeeze(1)
    needed = keep - above.numel()
    tied = tied[torch.randperm(tied.numel(), generator=generator)[:needed]]
    return torch.cat([above, tied])


class MaskEngine:
    """Owns the masks of one model: scoring targets, selection, enforcement and verification."""

    def __init__(
        self,
        model: nn.Module,
        *,
        exclude: Iterable[str] = (),
        include_bias: bool = False,
        scope: str = "global",
        seed: int = 0,
    ):
        if scope not in ("global", "layerwise"):
            raise ConfigError("prune.scope", f"unknown scope '{scope}'; allowed: global, layerwise")
        self.model = model
        self.scope = scope
        self._exclude = list(exclude)
        self._include_bias = include_bias
        self._seed = seed
        self._selections = 0
        self._hooks: list = []
        self._optimizers: weakref.WeakSet[torch.optim.Optimizer] = weakref.WeakSet()
        self._multipliers = _Multipliers()
        self.targets: list[PrunableTensor] = []
        self.rebind()

    def rebind(self) -> None:
        """(Re)discover the prunable tensors, e.g. after structured pruning replaced layers, giving new
        tensors all-ones masks and hooking the masks into their gradients."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.targets = find_prunable(self.model, self._exclude, self._include_bias)
        for target in self.targets:
            mask_name = f"{target.attr}{MASK_SUFFIX}"
            mask = getattr(target.module, mask_name, None)
            if mask is not None and mask.shape != target.param.shape:
                if not bool(mask.all()):
                    raise MaskError(f"{target.name} changed shape under a sparse mask; structured surgery needs dense masks")
                mask = None
            if mask is None:
                target.module.register_buffer(mask_name, torch.ones_like(target.param, dtype=torch.bool), persistent=False)
            if target.param.requires_grad:  # frozen tensors get no gradients to mask
                self._hooks.append(target.param.register_hook(self._masking_hook(target)))

    # ----------------------------------------------------------------- counts
    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        return {t.name: t.mask for t in self.targets}

    @property
    def params(self) -> dict[str, nn.Parameter]:
        return {t.name: t.param for t in self.targets}

    def total(self) -> int:
        return sum(t.mask.numel() for t in self.targets)

    def survivors(self) -> int:
        return sum(int(t.mask.sum()) for t in self.targets)

    def density(self) -> float:
        return self.survivors() / max(self.total(), 1)

    def sparsity(self) -> float:
        return 1.0 - self.density()

    def expected_survivors(self, density: float, scope: str | None = None) -> int:
        """The exact survivor count `prune_to_density(.., density, scope)` lands on from a full mask."""
        if (scope or self.scope) == "global":
            return keep_count(self.total(), density)
        return sum(keep_count(t.mask.numel(), density) for t in self.targets)

    # ----------------------------------------------------------------- selection
    def prune_to_density(self, scores: Mapping[str, torch.Tensor], density: float, scope: str | None = None) -> None:
        """Keep round(N*d) survivors globally, or round(N_l*d) per tensor under layer-wise scope.

        `scope` overrides the engine's scope for methods whose definition fixes it (random's variant).
        """
        if (scope or self.scope) == "global":
            self.prune_to_count(scores, keep_count(self.total(), density))
            return
        generator = self._next_generator()
        new = {}
        for target in self.targets:
            single = {target.name: target.mask}
            keep = keep_count(target.mask.numel(), density)
            new.update(select_top({target.name: scores[target.name]}, single, keep, generator))
        self.set_masks(new)

    def prune_to_count(self, scores: Mapping[str, torch.Tensor], keep: int) -> None:
        """Keep exactly `keep` survivors over all prunable tensors, ranked together."""
        self.set_masks(select_top(scores, self.masks, keep, self._next_generator()))

    def _next_generator(self) -> torch.Generator:
        # A fresh, seeded generator per selection: tie-breaking is reproducible yet differs per step.
        generator = torch.Generator().manual_seed(self._seed * 1_000_003 + self._selections)
        self._selections += 1
        return generator

    @torch.no_grad()
    def load_masks(self, saved: Mapping[str, torch.Tensor]) -> None:
        """Install saved masks as they are, without touching the weights, so `verify` can then tell
        whether the weights really are zero where the masks say they were pruned."""
        for target in self.targets:
            mask = saved.get(target.name)
            if mask is None or mask.shape != target.mask.shape:
                raise MaskError(f"no saved mask of shape {tuple(target.mask.shape)} for {target.name}")
            target.mask.copy_(mask)

    @torch.no_grad()
    def replace_masks(self, new_masks: Mapping[str, torch.Tensor]) -> None:
        """Install masks outright, not ANDed with the old ones: only for ablations, which move the
        survivors on purpose (the weights are reloaded after this)."""
        for target in self.targets:
            if target.name in new_masks:
                target.mask.copy_(new_masks[target.name])
        self.set_masks(self.masks)  # zero what the new masks remove, and its optimizer state

    @torch.no_grad()
    def set_masks(self, new_masks: Mapping[str, torch.Tensor]) -> None:
        """Install new masks (ANDed with the old ones), zero the weights and optimizer state they remove.
        Under data parallelism every rank installs rank 0's masks, and checks that all ranks now agree."""
        if distributed.current().parallel:
            current = self.masks
            new_masks = {name: mask.to(current[name].device, torch.bool, copy=True)
                         for name, mask in new_masks.items() if name in current}
            distributed.broadcast_from_main([new_masks[name] for name in sorted(new_masks)])
        for target in self.targets:
            if target.name not in new_masks:
                continue
            mask = target.mask
            mask.logical_and_(new_masks[target.name].to(mask.device))
            target.param.mul_(mask)
            for optimizer in self._optimizers:
                for value in optimizer.state.get(target.param, {}).values():
                    if torch.is_tensor(value) and value.shape == mask.shape:
                        value.mul_(mask)
        distributed.check_identical_masks(self.masks, "after a pruning step")

    # ----------------------------------------------------------------- enforcement
    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Re-apply masks after every step of `optimizer` (weight decay and momentum cannot revive weights)."""
        self._optimizers.add(optimizer)
        optimizer.register_step_post_hook(lambda *_: self.apply())

    @torch.no_grad()
    def apply(self) -> None:
        for target in self.targets:
            multiplier = self._multipliers.get(target, target.param)
            if multiplier is not None:
                target.param.mul_(multiplier)

    def _masking_hook(self, target: PrunableTensor):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            multiplier = self._multipliers.get(target, grad)
            return grad if multiplier is None else grad * multiplier

        return hook

    def verify(self, expected_survivors: int | None = None) -> None:
        """Fail loudly when a masked weight is non-zero or the survivor count is not the recorded one."""
        for target in self.targets:
            leaked = int(((target.param != 0) & ~target.mask).sum())
            if leaked:
                raise MaskError(f"{leaked} pruned weights of {target.name} are non-zero")
        if expected_survivors is not None and self.survivors() != expected_survivors:
            raise MaskError(f"{self.survivors()} weights survive, expected {expected_survivors}")

    # ----------------------------------------------------------------- reporting
    def layer_stats(self) -> list[dict]:
        """Per prunable tensor: size, surviving mask entries and actually non-zero weights."""
        rows = []
        for target in self.targets:
            numel = target.mask.numel()
            rows.append(
                {
                    "name": target.name,
                    "numel": numel,
                    "survivors": int(target.mask.sum()),
                    "nonzero": int((target.param != 0).sum()),
                    "density": int(target.mask.sum()) / numel,
                }
            )
        return rows

    def mask_state(self) -> dict[str, torch.Tensor]:
        """A copy of the masks keyed by parameter name, for saving."""
        return {name: mask.detach().cpu().clone() for name, mask in self.masks.items()}

    def state_dict(self) -> dict:
        """The masks and the selection counter (tie-breaking of later selections depends on it)."""
        return {"masks": self.mask_state(), "selections": self._selections}

    def load_state_dict(self, state: dict) -> None:
        self.load_masks(state["masks"])
        self._selections = int(state["selections"])
