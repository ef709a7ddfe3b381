"""The data a pruning scorer reads: labelled samples and a stream of fresh mini-batches, drawn from the
augmented training set with their own seeded generators (never the test set, never the training order)."""

from __future__ import annotations

from typing import Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


def chunks(inputs: torch.Tensor, targets: torch.Tensor, size: int) -> list[Batch]:
    return [(inputs[i : i + size], targets[i : i + size]) for i in range(0, len(targets), size)]


def labelled_sample(source, count: int, *, balanced: bool, generator: torch.Generator) -> Batch:
    """`count` training examples, augmented; with `balanced`, count // #classes from every class."""
    labels = source.labels
    if balanced:
        classes = torch.unique(labels)
        per_class = max(count // len(classes), 1)
        picked = []
        for label in classes:
            members = (labels == label).nonzero().reshape(-1)
            order = torch.randperm(len(members), generator=generator)[:per_class]
            picked.append(members[order])
        indices = torch.stack(picked, dim=1).reshape(-1) if _equal_sizes(picked) else torch.cat(picked)
    else:
        indices = torch.randperm(len(labels), generator=generator)[: min(count, len(labels))]
    return source.take(indices, augment=True, generator=generator)


def _equal_sizes(parts: list[torch.Tensor]) -> bool:
    return len({len(p) for p in parts}) == 1


def batch_stream(source, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Endless shuffled, augmented mini-batches: one epoch after another with the same generator."""
    drop_last = source.num_samples >= batch_size  # full batches only, unless the set is smaller than one
    while True:
        yield from source.batches(batch_size, shuffle=True, generator=generator, augment=True, drop_last=drop_last)
