"""Classification metrics."""

from __future__ import annotations

import torch


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, torch.Tensor]:
    """Number of samples whose target is among the k highest logits, for each k (k capped at #classes),
    as tensors on the logits' device (summed there, read once at the end)."""
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices
    hits = top.eq(targets.unsqueeze(1))
    return {k: hits[:, : min(k, max_k)].any(dim=1).sum() for k in ks}
