"""Density schedules (docs/conventions.md): their shapes, and that every one of them lands exactly on
round(N * d) survivors for any target and any layer sizes."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.methods import prune
from drive_runner.pruning.masks import MaskEngine
from drive_runner.pruning.schedules import density_path, gmp_density, imp_survivors


def test_exponential_removes_the_same_fraction_each_step():
    path = density_path("exponential", 0.1, 100)
    assert len(path) == 100
    assert path[-1] == pytest.approx(0.1)
    assert 1 - path[0] == pytest.approx(0.0228, abs=1e-4)  # 2.28% per step for d = 0.1, n = 100
    ratios = [b / a for a, b in zip(path, path[1:])]
    assert max(ratios) == pytest.approx(min(ratios))


def test_linear_removes_the_same_amount_each_step():
    path = density_path("linear", 0.2, 4)
    assert path == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_oneshot_is_a_single_step():
    assert density_path("oneshot", 0.05, 100) == [0.05]


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="schedule"):
        density_path("zigzag", 0.1, 3)


def test_exponential_reaches_extreme_targets():
    assert math.isclose(density_path("exponential", 1e-5, 100)[-1], 1e-5)


# Sparsities typed as decimals (0.9875, 0.99, 0.123456), and layer shapes (in, out) of a small MLP.
sparsities = st.decimals(min_value="0.0001", max_value="0.9999", places=6).map(float)
layer_sizes = st.lists(st.integers(min_value=1, max_value=60), min_size=2, max_size=4)


def mlp(widths: list[int]) -> nn.Sequential:
    return nn.Sequential(*[nn.Linear(a, b) for a, b in zip(widths, widths[1:])])


def expected_survivors(widths: list[int], sparsity: float, layerwise: bool) -> int:
    density = round(1 - sparsity, 12)  # the decimal the user typed
    sizes = [a * b for a, b in zip(widths, widths[1:])]
    return sum(round(n * density) for n in sizes) if layerwise else round(sum(sizes) * density)


@settings(max_examples=60, deadline=None)
@given(sparsity=sparsities, widths=layer_sizes, iterations=st.integers(1, 12),
       schedule=st.sampled_from(["oneshot", "exponential", "linear"]), layerwise=st.booleans())
def test_every_density_path_lands_exactly_on_round_n_d(sparsity, widths, iterations, schedule, layerwise):
    path = density_path(schedule, round(1 - sparsity, 12), iterations)
    assert path[-1] == round(1 - sparsity, 12)
    masks = prune(mlp(widths), "random", sparsity, schedule=schedule, iterations=iterations,
                  scope="layerwise" if layerwise else "global", input_shape=(widths[0],))
    assert sum(int(m.sum()) for m in masks.values()) == expected_survivors(widths, sparsity, layerwise)


@settings(max_examples=60, deadline=None)
@given(sparsity=sparsities, widths=layer_sizes, end=st.integers(2, 500), interval=st.integers(1, 50))
def test_gmp_ends_exactly_on_round_n_d(sparsity, widths, end, interval):
    engine = MaskEngine(mlp(widths))
    density = round(1 - sparsity, 12)
    generator = torch.Generator().manual_seed(0)
    for step in [*range(1, end, interval), end]:
        scores = {name: torch.rand(p.shape, generator=generator) for name, p in engine.params.items()}
        engine.prune_to_density(scores, gmp_density(step, start_step=0, end_step=end, initial_sparsity=0.0,
                                                    final_density=density))
    assert gmp_density(end, start_step=0, end_step=end, initial_sparsity=0.0, final_density=density) == density
    assert engine.survivors() == expected_survivors(widths, sparsity, layerwise=False)


@settings(max_examples=100, deadline=None)
@given(total=st.integers(1, 10**7), sparsity=sparsities)
def test_imp_levels_end_exactly_on_round_n_d(total, sparsity):
    target = round(total * round(1 - sparsity, 12))
    levels = imp_survivors(total, target, 0.2)
    assert (levels[-1] if levels else total) == target
    assert all(a > b for a, b in zip([total, *levels], levels))


def test_the_reported_case_lands_on_628_of_50200():
    # 50,200 * 0.0125 = 627.5, which Python's round() takes to 628; 1 - (1 - 0.0125) gave 627.
    masks = prune(mlp([64, 300, 100, 10]), "magnitude", 0.9875, schedule="linear", iterations=10, input_shape=(64,))
    assert sum(int(m.sum()) for m in masks.values()) == 628
