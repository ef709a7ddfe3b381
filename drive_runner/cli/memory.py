"""`drive-memory`: a model's measured training-memory profile, per layer, from the same overrides as drive-run.

    drive-memory model=vgg11 dataset=digits dataset.image_size=32 hardware.memory_budget_mb=140

Needs no data on disk (only the dataset's image shape and class count) and trains nothing: one forward
pass at two batch sizes is measured with saved-tensor hooks.
"""

from __future__ import annotations

import sys

import torch
from rich.table import Table

from drive_runner.cli.compose import compose_config, one_line
from drive_runner.cli.run import leave, quiet_on_closed_pipe
from drive_runner.cli.usage import answered_info_flag, memory_usage
from drive_runner.data import describe
from drive_runner.instantiation import label
from drive_runner.memory.accounting import MB, fit_memory_model, optimizer_slots
from drive_runner.memory.budget import powers_of_two
from drive_runner.models import build_model
from drive_runner.tracking.console import rich_console
from drive_runner.validation import validate


def profile(overrides: list[str]) -> None:
    cfg = compose_config(overrides)
    validate(cfg, memory=False)
    input_shape, num_classes = describe(cfg.dataset)
    torch.manual_seed(int(cfg.seed))
    model = build_model(cfg.model, input_shape, num_classes)
    memory = fit_memory_model(
        model, input_shape, num_classes, device=torch.device("cpu"),
        optimizer_state_slots=optimizer_slots(cfg.trainer.optimizer, cfg.trainer.momentum),
        margin_bytes=int(cfg.hardware.memory_margin_mb * MB),
    )
    console = rich_console()
    layers = Table(title=f"{label(cfg.model)} on {label(cfg.dataset)} {tuple(input_shape)}: saved for backward, per sample")
    for column in ("layer", "type", "parameters", "activations KB / sample"):
        layers.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        params = sum(p.numel() for p in module.parameters(recurse=False))
        layers.add_row(name, type(module).__name__, f"{params:,}", f"{memory.layers.get(name, 0) / 1024:.1f}")
    console.print(layers)

    budget = cfg.hardware.memory_budget_mb
    peaks = Table(title="modelled peak training memory, M(b) = static + b x per sample")
    for column in ("batch", "peak MB", "fits the budget"):
        peaks.add_column(column, justify="right")
    for batch in powers_of_two(1, 1024):
        peak = memory.peak(batch) / MB
        peaks.add_row(str(batch), f"{peak:.1f}", "-" if budget is None else ("yes" if peak <= budget else "no"))
    console.print(peaks)
    console.print(
        f"static {memory.static / MB:.1f} MB (parameters, gradients, optimizer state, buffers), "
        f"{memory.per_sample / MB:.3f} MB per sample, fixed {memory.fixed / MB:.3f} MB, margin {memory.margin / MB:.1f} MB",
        markup=False, highlight=False,
    )
    if budget is not None:
        largest = memory.largest_batch(budget * MB, powers_of_two(1, 4096))
        console.print(f"largest power-of-two batch within {budget:g} MB: {largest or 'none (batch 1 does not fit)'}",
                      markup=False, highlight=False)


def main(argv: list[str]) -> int:
    if answered_info_flag(argv, "drive-memory", memory_usage):
        return 0
    try:
        profile(argv)
    except Exception as error:  # noqa: BLE001 - one line, as drive-run does
        print(f"drive-memory: error: {one_line(error)}", file=sys.stderr)
        return 2
    return 0


def entry() -> None:
    leave(quiet_on_closed_pipe(lambda: main(sys.argv[1:])))
