"""The density a run targets, from `sparsity=` or `compression=`, and the most extreme target that
still keeps a weight."""

from __future__ import annotations

import math


def density_of(sparsity: float) -> float:
    """1 - sparsity, as the decimal the user meant: 1 - 0.9 is 0.09999999999999998 in floating point,
    and round(N * d) must not come out one weight short."""
    return round(1.0 - float(sparsity), 12)


def target_density(cfg) -> float:
    """Density of the prunable set: from `compression` (log10 of N/kept) when set, else 1 - sparsity."""
    if cfg.compression is not None:
        return 10.0 ** (-float(cfg.compression))
    return density_of(cfg.sparsity)


def most_extreme_target(total: int) -> tuple[float, float]:
    """(sparsity, compression) that keep exactly one of `total` prunable weights."""
    return 1.0 - 1.0 / total, math.log10(total)
