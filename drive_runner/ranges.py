"""Allowed values of config fields, declared on the schema fields themselves beside their defaults:

    lr: float = ranged(0.1, low=0, low_open=True)       # must be a number in (0, inf)

Choices are enums (OmegaConf refuses other values while composing); numbers carry a rule in their field's
metadata, which drive_runner.validation applies to every typed node of a config, a method's own options
included. Each rule raises ConfigError naming the key and spelling out what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any, Callable

from drive_runner.errors import ConfigError

RULE = "drive_runner.rule"  # the metadata key
Rule = Callable[[str, Any], None]


def check(key: str, ok: bool, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, allowed)


def number_rule(low: float | None = None, high: float | None = None, *, integer: bool = False,
                low_open: bool = False, high_open: bool = False, optional: bool = False) -> Rule:
    """A range rule; the error text spells out the interval, e.g. 'must be a number in [0, 1)'."""

    def rule(key: str, value: Any) -> None:
        if value is None and optional:
            return
        kind = "an integer" if integer else "a number"
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        message = f"must be {kind} in {interval}" + (" or null" if optional else "") + f", got {value!r}"
        valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
        check(key, valid_type and not isinstance(value, bool) and finite, message)
        if low is not None:
            check(key, value > low if low_open else value >= low, message)
        if high is not None:
            check(key, value < high if high_open else value <= high, message)

    return rule


def ranged(default: Any, low: float | None = None, high: float | None = None, **options) -> Any:
    """A dataclass field with a default and a range (see number_rule)."""
    return field(default=default, metadata={RULE: number_rule(low, high, **options)})


def ruled(default: Any = None, rule: Rule | None = None, default_factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with a default and a rule of its own."""
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={RULE: rule})
    return field(default=default, metadata={RULE: rule})


def batch_size_rule(key: str, value: Any) -> None:
    ok = value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
    check(key, ok, f"must be an integer >= 1 or auto, got {value!r}")


def epochs_list_rule(key: str, value: Any) -> None:
    values = list(value)
    check(key, all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in values),
          f"must be a list of epochs >= 0, got {values}")


def one_of_rule(*options: str) -> Rule:
    def rule(key: str, value: Any) -> None:
        check(key, value in options, f"must be one of {', '.join(options)}, got {value!r}")

    return rule
