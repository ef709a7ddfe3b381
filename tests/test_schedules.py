"""Density paths of iterative pruning (METHODS.md §0.6)."""

import math

import pytest

from drive_runner.errors import ConfigError
from drive_runner.pruning.schedules import density_path


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
