"""The papers' numbers a table is compared with, shipped as data: references/<name>.yaml.

Each file names the paper, the table or figure, the paper's recipe and what this project's recipe does
differently, and lists comparisons: a quantity (test error in %, training FLOPs removed, ...), the summary
field its columns come from, and entries that match runs by summary fields (method, model, dataset,
target sparsity or compression) and give the paper's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Callable

import yaml

from drive_runner.errors import ConfigError


@dataclass(frozen=True)
class Quantity:
    label: str
    summary_key: str  # the summary field it is computed from
    convert: Callable[[float], float]  # summary value -> the paper's unit


QUANTITIES = {
    "test_acc_percent": Quantity("test accuracy (%)", "test_acc", lambda v: 100.0 * v),
    "test_error_percent": Quantity("test error (%)", "test_acc", lambda v: 100.0 * (1.0 - v)),
    "training_flops_removed_percent": Quantity("training FLOPs removed (%)", "training_flops_reduction",
                                               lambda v: 100.0 * v),
    "inference_flops_removed_percent": Quantity("inference FLOPs removed (%)", "inference_flops_reduction",
                                                lambda v: 100.0 * v),
}


def quantity_of(name: str) -> Quantity:
    """A named quantity, or any summary field as it is (e.g. timings_s.find_mask)."""
    return QUANTITIES.get(name) or Quantity(name, name, float)


@dataclass(frozen=True)
class Comparison:
    quantity: str
    columns: str  # the summary field the paper's columns are (target_sparsity, target_compression, dataset)
    entries: list[dict]  # summary fields to match, and `value` in the quantity's unit

    @property
    def measure(self) -> Quantity:
        return QUANTITIES[self.quantity]


@dataclass(frozen=True)
class Reference:
    name: str
    paper: str
    source: str
    recipe: str
    differences: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    expectations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    expected_time: dict = field(default_factory=dict)  # table.recipe -> the whole table's wall-clock, and where


def reference_names() -> list[str]:
    folder = resources.files("drive_runner.tables") / "references"
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_reference(name: str) -> Reference:
    """The reference data of a table; an unknown name lists the ones that exist."""
    if name not in reference_names():
        raise ConfigError("--reference", f"no reference named '{name}'; allowed: {', '.join(reference_names())}")
    data = yaml.safe_load((resources.files("drive_runner.tables") / "references" / f"{name}.yaml").read_text())
    comparisons = [Comparison(c["quantity"], c["columns"], list(c["entries"])) for c in data.get("comparisons") or []]
    unknown = sorted({c.quantity for c in comparisons} - set(QUANTITIES))
    if unknown:
        raise ValueError(f"reference {name}: unknown quantities {unknown}; known: {sorted(QUANTITIES)}")
    return Reference(name=data["name"], paper=data["paper"], source=data["source"], recipe=data["recipe"],
                     differences=list(data.get("differences") or []), comparisons=comparisons,
                     expectations=list(data.get("expectations") or []), notes=list(data.get("notes") or []),
                     expected_time=dict(data.get("expected_time") or {}))
