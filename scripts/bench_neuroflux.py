"""Backprop with the largest batch that fits a memory budget against NeuroFlux under the same budget.

    python scripts/bench_neuroflux.py                                   # VGG-11 on digits at 32x32
    python scripts/bench_neuroflux.py model=resnet20 hardware.memory_budget_mb=40

Arguments are drive-run overrides for both runs (trainer keys go to the trainer that has them). NeuroFlux
takes no recipe, so it is given the backprop recipe's epochs, lr, momentum and reference batch. Without
hardware.memory_budget_mb the budget is set just above backprop's modelled peak at batch 16, so backprop is
held to batch 16. Prints wall-clock, measured
peak memory, test accuracy and parameter count of both, then the speed-up, accuracy difference and
parameter reduction of NeuroFlux's exit model.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import torch

from drive_runner.cli.compose import compose_config
from drive_runner.data import describe
from drive_runner.memory.accounting import MB, fit_memory_model, optimizer_slots
from drive_runner.memory.options import NeuroFluxConfig
from drive_runner.models import build_model
from drive_runner.pipeline import run
from drive_runner.pruning.masks import MaskEngine
from drive_runner.tracking.console import QuietConsole
from drive_runner.train.options import TrainerConfig

DEFAULTS = ["dataset=digits", "dataset.image_size=32", "model=vgg11", "logger=none"]
BACKPROP_BATCH = 16
SHARED_RECIPE = ("epochs", "lr", "momentum", "lr_reference_batch")  # what NeuroFlux takes from backprop's recipe


def config(trainer: str, overrides: list[str]):
    """The run's config; trainer keys the trainer lacks (NeuroFlux's knobs for backprop, the recipe's
    optimizer and schedule for NeuroFlux) are left out."""
    known = {f.name for f in fields(TrainerConfig if trainer == "backprop" else NeuroFluxConfig)}
    mine = [o for o in overrides if not o.startswith("trainer.") or o[8:].split("=")[0] in known]
    if trainer == "backprop":
        return compose_config(["trainer=backprop", "trainer.batch_size=auto", "method=dense", *mine], DEFAULTS)
    recipe = config("backprop", overrides).trainer
    given = {o.split("=")[0] for o in mine}
    shared = [f"trainer.{key}={recipe[key]}" for key in SHARED_RECIPE if f"trainer.{key}" not in given]
    return compose_config(["trainer=neuroflux", *shared, *mine], DEFAULTS)


def default_budget(overrides: list[str]) -> str:
    """Just above backprop's modelled peak at batch 16 (and below batch 32)."""
    cfg = config("backprop", overrides)
    shape, classes = describe(cfg.dataset)
    torch.manual_seed(0)
    model = build_model(cfg.model, shape, classes)
    MaskEngine(model)  # the runner's model carries its (all-ones) masks: count them as it does
    memory = fit_memory_model(model, shape, classes, device=torch.device("cpu"),
                              optimizer_state_slots=optimizer_slots(cfg.trainer.optimizer, cfg.trainer.momentum))
    budget = memory.peak(BACKPROP_BATCH) + 0.25 * (memory.peak(2 * BACKPROP_BATCH) - memory.peak(BACKPROP_BATCH))
    return f"hardware.memory_budget_mb={budget / MB:.1f}"


def main(overrides: list[str]) -> None:
    if not any(o.startswith("hardware.memory_budget_mb=") for o in overrides):
        overrides = [*overrides, default_budget(overrides)]
    with tempfile.TemporaryDirectory() as scratch:
        backprop_cfg, neuroflux_cfg = config("backprop", overrides), config("neuroflux", overrides)
        print(f"{backprop_cfg.model.name} on {backprop_cfg.dataset.name}, budget {backprop_cfg.hardware.memory_budget_mb} MB, "
              f"{backprop_cfg.trainer.epochs} epochs, device {'cuda' if torch.cuda.is_available() else 'cpu'}", flush=True)
        backprop = run(backprop_cfg, Path(scratch) / "backprop", console=QuietConsole())
        neuroflux = run(neuroflux_cfg, Path(scratch) / "neuroflux", console=QuietConsole())

    memory = backprop["memory"]
    report = neuroflux["neuroflux"]
    exits = report["exits"]
    chosen = exits[report["chosen_exit"]]
    nf_peak = max(block["measured_peak_mb"] for block in report["blocks"])
    print(f"\n{'':<12}{'wall-clock s':>13}{'peak MB':>10}{'test acc':>10}{'parameters':>13}  batch")
    print(f"{'backprop':<12}{backprop['timings_s']['total']:>13.1f}{memory['measured_peak_mb']:>10.1f}"
          f"{backprop['test_acc']:>10.4f}{backprop['params_total']:>13,}  {memory['batch_size']}")
    print(f"{'neuroflux':<12}{neuroflux['timings_s']['total']:>13.1f}{nf_peak:>10.1f}{neuroflux['test_acc']:>10.4f}"
          f"{neuroflux['params_total']:>13,}  {' / '.join(str(b['batch_size']) for b in report['blocks'])} per block")
    print()
    for block in report["blocks"]:
        print(f"block {block['block']}: units {block['units']}, batch {block['batch_size']}, measured peak "
              f"{block['measured_peak_mb']:.1f} MB (modelled {block['modelled_peak_mb']:.1f}), {block['time_s']:.1f} s")
    for row in exits:
        mark = "  <- chosen" if row is chosen else ""
        print(f"exit after unit {row['unit']}: val {row['val_acc']:.4f}, test {row['test_acc']:.4f}, "
              f"{row['params']:,} parameters{mark}")
    print()
    print(f"speed-up           : {backprop['timings_s']['total'] / neuroflux['timings_s']['total']:.2f}x "
          "(backprop wall-clock / NeuroFlux wall-clock, profiling and caching included)")
    print(f"accuracy           : {(neuroflux['test_acc'] - backprop['test_acc']) * 100:+.2f} points")
    print(f"parameters         : {backprop['params_total'] / neuroflux['params_total']:.1f}x fewer in the exit model")
    print(f"within the budget  : backprop {memory['within_budget']}, NeuroFlux "
          f"{all(b['measured_peak_mb'] <= report['budget_mb'] for b in report['blocks'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
