"""Density paths of iterative pruning (METHODS.md §0.6): the density after each of n steps."""

from __future__ import annotations

from typing import Callable

from drive_runner.errors import ConfigError


def oneshot(final_density: float, iterations: int) -> list[float]:
    """One step straight to the target; `iterations` is ignored."""
    return [final_density]


def exponential(final_density: float, iterations: int) -> list[float]:
    """d_k = d^(k/n): every step removes the same fraction, 1 - d^(1/n), of the survivors."""
    return [final_density ** (k / iterations) for k in range(1, iterations + 1)]


def linear(final_density: float, iterations: int) -> list[float]:
    """d_k = 1 - (1 - d) k / n: every step removes the same number of weights."""
    return [1.0 - (1.0 - final_density) * k / iterations for k in range(1, iterations + 1)]


DENSITY_PATHS: dict[str, Callable[[float, int], list[float]]] = {
    "oneshot": oneshot,
    "exponential": exponential,
    "linear": linear,
}


def density_path(name: str, final_density: float, iterations: int) -> list[float]:
    if name not in DENSITY_PATHS:
        raise ConfigError("schedule", f"unknown density schedule '{name}'; allowed: {', '.join(sorted(DENSITY_PATHS))}")
    return DENSITY_PATHS[name](final_density, iterations)
