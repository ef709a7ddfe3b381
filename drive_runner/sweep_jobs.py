"""The jobs of a `-m` sweep: one per combination of comma-separated values, as Hydra's basic sweeper launches
them, read with Hydra's public override parser. drive-run lists them before launching (to check every job
first), and so do published tables (their grids are sweeps)."""

from __future__ import annotations

import itertools

from hydra.core.override_parser.overrides_parser import OverridesParser

from drive_runner.errors import ConfigError


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """Every job of a sweep: one per combination of the comma-separated values (a later value of a key
    replaces an earlier one), in the order Hydra's basic sweeper launches them."""
    by_key: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(key.lstrip("+~"), "a range or interval sweep cannot be listed; give the values "
                                                    "one by one (key=a,b,c)")
            by_key[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            by_key[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*by_key.values())]
