"""Pruning schedules: density paths of iterative pruning (docs/conventions.md), GMP's cubic ramp and
IMP's levels."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

from drive_runner.errors import ConfigError


def oneshot(final_density: float, iterations: int, start: float = 1.0) -> list[float]:
    """One step straight to the target; `iterations` is ignored."""
    return [final_density]


def exponential(final_density: float, iterations: int, start: float = 1.0) -> list[float]:
    """d_k = d0 (d/d0)^(k/n): every step removes the same fraction of the survivors (1 - d^(1/n) from dense)."""
    return [start * (final_density / start) ** (k / iterations) for k in range(1, iterations + 1)]


def linear(final_density: float, iterations: int, start: float = 1.0) -> list[float]:
    """d_k = d0 - (d0 - d) k / n: every step removes the same number of weights."""
    return [start - (start - final_density) * k / iterations for k in range(1, iterations + 1)]


DENSITY_PATHS: dict[str, Callable[[float, int, float], list[float]]] = {
    "oneshot": oneshot,
    "exponential": exponential,
    "linear": linear,
}


def density_path(name: str, final_density: float, iterations: int, start: float = 1.0) -> list[float]:
    """Densities after each of `iterations` steps from density `start` (1 = dense) to `final_density`.

    The last step is `final_density` itself: the formulas reach it only up to rounding (1 - (1 - d) is
    not d in floating point), and round(N * d) one weight off would fail the run's survivor check."""
    if name not in DENSITY_PATHS:
        raise ConfigError("schedule", f"unknown density schedule '{name}'; allowed: {', '.join(sorted(DENSITY_PATHS))}")
    if final_density > start:
        raise ConfigError("sparsity", f"the network is already sparser (density {start:.6g}) than the target {final_density:.6g}")
    if start == 0:
        return [0.0] * iterations
    return [*DENSITY_PATHS[name](final_density, iterations, start)[:-1], final_density]


def gmp_sparsity(step: int, *, start_step: int, end_step: int, initial: float, final: float) -> float:
    """Gradual magnitude pruning's cubic ramp (Zhu & Gupta 2017, docs/magnitude-during-training.md):
    s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t_end - t0))^3, constant s_i before t0 and s_f after t_end."""
    if step <= start_step:
        return initial
    if step >= end_step:
        return final
    progress = (step - start_step) / (end_step - start_step)
    return final + (initial - final) * (1.0 - progress) ** 3


def gmp_density(step: int, *, start_step: int, end_step: int, initial_sparsity: float, final_density: float) -> float:
    """The density GMP prunes to at `step`: 1 - s_t on the ramp, and `final_density` itself from the
    end of the window on (1 - (1 - d) is not d in floating point)."""
    if step >= end_step:
        return final_density
    return 1.0 - gmp_sparsity(step, start_step=start_step, end_step=end_step, initial=initial_sparsity,
                              final=1.0 - final_density)


def imp_survivors(total: int, target: int, fraction: float, exact_target: bool = True) -> list[int]:
    """Survivors after each IMP level: r_l = r_{l-1} - ceil(f * r_{l-1}) in exact integer arithmetic
    (f = 0.2: r - floor((r + 4) / 5)); with `exact_target` the last level removes less to land on `target`."""
    rate = Fraction(str(fraction))
    counts, survivors = [], total
    while survivors > target:
        survivors -= math.ceil(rate * survivors)
        if exact_target and survivors < target:
            survivors = target
        counts.append(survivors)
    return counts


def layerwise_imp_survivors(sizes: dict[str, int], target: int, fractions: dict[str, float]) -> list[dict[str, int]]:
    """Each tensor's survivors after each IMP level when every tensor loses its own fraction of its survivors
    (the Lottery Ticket paper's layer-wise rates: 20% of a hidden layer, 10% of the output layer), level after
    level until the total is at most `target`."""
    rates = {name: Fraction(str(fraction)) for name, fraction in fractions.items()}
    counts, survivors = [], dict(sizes)
    while sum(survivors.values()) > target:
        survivors = {name: kept - math.ceil(rates[name] * kept) for name, kept in survivors.items()}
        counts.append(survivors)
    return counts


SCHEDULE_NAMES = (*DENSITY_PATHS, "cubic", "imp_levels")
