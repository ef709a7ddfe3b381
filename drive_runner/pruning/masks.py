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

import functools
import math
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


# Above this many unpruned entries, a strided sample of them brackets the threshold, and the exact
# k-th value search runs only on the entries inside the bracket.
DIRECT_SEARCH_MAX = 1 << 18
SAMPLE_SIZE = 1 << 16


def select_top(
    scores: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    keep: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """New masks keeping exactly `keep` of the currently unpruned entries, highest score first.

    Only unpruned entries are ranked, so pruned ones can never come back (monotone masks). Ties at
    the cut are broken by a seeded random permutation of the tied entries, taken in the order of the
    concatenated tensors (equivalent to "permute, then stable sort"). Non-finite scores among unpruned
    entries abort with the tensor's name, since a NaN ranking would silently decide the mask.
    Selection works tensor by tensor on the masks' device, in the scores' common dtype (float32 and
    float64 scores are compared as float64); the exact k-th value search runs only on the entries
    inside a bracket found from a sample, so nothing concatenates or sorts all the scores.
    """
    names = list(masks)
    dtype = _common_dtype([scores[name].dtype for name in names])
    values = [scores[name].detach().to(masks[name].device, dtype).reshape(-1) for name in names]
    positions = [_true_positions(masks[name]) for name in names]
    alive = [tensor_values[where] for tensor_values, where in zip(values, positions)]
    for name, tensor_alive in zip(names, alive):
        if not _all_finite(tensor_alive):
            raise MaskError(f"non-finite pruning scores in {name} (NaN or inf); the scorer overflowed or diverged")
    remaining = sum(tensor_alive.numel() for tensor_alive in alive)
    if not 0 <= keep <= remaining:
        raise MaskError(f"cannot keep {keep} weights: only {remaining} survive (masks are monotone)")
    if keep == 0:
        return {name: torch.zeros_like(masks[name]) for name in names}

    threshold, ties = _threshold_and_ties(alive, keep, remaining, generator)
    new_masks = {}
    for name, tensor_values, tensor_alive, where, tensor_ties in zip(names, values, alive, positions, ties):
        mask, cut = masks[name].reshape(-1), threshold.to(tensor_alive.device)
        tied = (tensor_alive == cut).nonzero().squeeze(1)[tensor_ties.to(cut.device)] if tensor_ties.numel() else None
        if 16 * tensor_alive.numel() > mask.numel():  # dense: one comparison over the whole tensor is cheapest
            kept = (tensor_values > cut).logical_and_(mask)
            if tied is not None:
                kept[where[tied]] = True
        else:  # sparse: clear the unpruned entries that do not survive
            survives = tensor_alive > cut
            if tied is not None:
                survives[tied] = True
            kept = mask.clone()
            kept[where[~survives]] = False
        new_masks[name] = kept.reshape(masks[name].shape)
    return new_masks


def _true_positions(mask: torch.Tensor) -> torch.Tensor:
    """Flat positions of a boolean tensor's True entries, in order. A sparse mask is scanned as 64-bit
    words, eight entries at a time, and only its non-zero words are looked into: a scan of every
    entry costs several times more, and most masks are sparse for most of a pruning schedule."""
    flat = mask.reshape(-1)
    whole = flat.numel() - flat.numel() % 8
    if flat.storage_offset() % 8:  # a bool tensor views as 64-bit words only from an aligned start
        return flat.nonzero().squeeze(1)
    words = flat[:whole].view(torch.int64).nonzero().squeeze(1)
    if 2 * words.numel() > whole // 8:  # dense: the plain scan is no slower
        return flat.nonzero().squeeze(1)
    candidates = (words.unsqueeze(1) * 8 + torch.arange(8, device=flat.device)).reshape(-1)
    return torch.cat([candidates[flat[candidates]], whole + flat[whole:].nonzero().squeeze(1)])


def _common_dtype(dtypes: list[torch.dtype]) -> torch.dtype:
    """The dtype every score converts to exactly, so that mixed-precision scores rank correctly."""
    if not dtypes or not all(dtype.is_floating_point for dtype in dtypes):
        return torch.float64
    return functools.reduce(torch.promote_types, dtypes)


def _all_finite(values: torch.Tensor) -> bool:
    """One reduction in the common case: a finite sum needs every value finite."""
    return bool(torch.isfinite(values.sum())) or bool(torch.isfinite(values).all())


def _threshold_and_ties(
    alive: list[torch.Tensor], keep: int, remaining: int, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The keep-th largest of the unpruned scores (given per tensor, 1 <= keep) and, per tensor, which
    of its unpruned entries equal to that value survive, as positions among them."""
    low, high = _bracket(alive, keep, remaining)
    above, below, inside = _split(alive, low, high)
    if not above < keep <= remaining - below:
        # The sample missed the threshold: widen the bracket to the side it lies on.
        low, high = (high, torch.full_like(high, float("inf"))) if above >= keep else (torch.full_like(low, float("-inf")), low)
        above, below, inside = _split(alive, low, high)

    candidates = torch.cat([values.to(low.device) for values in inside])
    needed = keep - above
    threshold = torch.kthvalue(candidates, candidates.numel() - needed + 1).values
    tied_counts = [int(torch.count_nonzero(values == threshold.to(values.device))) for values in inside]
    ties_needed = needed - int(torch.count_nonzero(candidates > threshold))
    chosen = torch.randperm(sum(tied_counts), generator=generator)[:ties_needed]
    ties, offset = [], 0
    for count in tied_counts:
        ties.append(chosen[(chosen >= offset) & (chosen < offset + count)] - offset)
        offset += count
    return threshold, ties


def _bracket(alive: list[torch.Tensor], keep: int, remaining: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds that hold the keep-th largest unpruned score unless a strided sample of about SAMPLE_SIZE
    of them is very unlucky: the sample values four standard deviations (plus a little) either side of
    the rank where that score is expected. With few unpruned entries, the whole range."""
    device, dtype = alive[0].device, alive[0].dtype
    low = torch.tensor(float("-inf"), dtype=dtype, device=device)
    high = torch.tensor(float("inf"), dtype=dtype, device=device)
    if remaining <= DIRECT_SEARCH_MAX:
        return low, high
    stride = remaining // SAMPLE_SIZE
    sample = torch.cat([values[::stride].to(device) for values in alive]).sort(descending=True).values
    size, fraction = sample.numel(), keep / remaining
    margin = 4 * math.sqrt(size * fraction * (1 - fraction)) + 16
    top_rank, bottom_rank = math.floor(fraction * size - margin), math.ceil(fraction * size + margin)
    if top_rank >= 1:
        high = sample[top_rank - 1]
    if bottom_rank <= size:
        low = sample[bottom_rank - 1]
    return low, high


def _split(
    alive: list[torch.Tensor], low: torch.Tensor, high: torch.Tensor
) -> tuple[int, int, list[torch.Tensor]]:
    """How many unpruned scores lie above and below [low, high], and those inside it, per tensor."""
    above = below = 0
    inside = []
    for values in alive:
        over, under = values > high.to(values.device), values < low.to(values.device)
        above += int(torch.count_nonzero(over))
        below += int(torch.count_nonzero(under))
        inside.append(values[over.logical_or_(under).logical_not_()])
    return above, below, inside


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
        return sum(int(torch.count_nonzero(t.mask)) for t in self.targets)

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
        self.prune_to_count(scores, {t.name: keep_count(t.mask.numel(), density) for t in self.targets})

    def prune_to_count(self, scores: Mapping[str, torch.Tensor], keep: int | Mapping[str, int]) -> None:
        """Keep exactly `keep` survivors over all prunable tensors ranked together, or `keep[name]` in each
        tensor ranked within it (layer-wise)."""
        generator = self._next_generator()
        if not isinstance(keep, Mapping):
            self.set_masks(select_top(scores, self.masks, keep, generator))
            return
        new = {}
        for target in self.targets:
            single = {target.name: target.mask}
            new.update(select_top({target.name: scores[target.name]}, single, keep[target.name], generator))
        self.set_masks(new)

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
