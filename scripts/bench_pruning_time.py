"""Find-mask time of DRIVE against IMP on the same model, data and target sparsity, in one process.

    python scripts/bench_pruning_time.py                       # LeNet-300-100 on digits, 90% sparsity
    python scripts/bench_pruning_time.py model=resnet20 dataset.image_size=32 sparsity=0.95

Arguments are drive-run overrides shared by both runs. Prints each method's find-mask time (DRIVE:
warm-up plus scoring; IMP: the training of every level before the last, docs/drive.md), their ratio,
the test accuracy of both, and DRIVE's cost per pruning iteration against one training step.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from drive_runner.cli.compose import compose_config
from drive_runner.data import build_dataset
from drive_runner.methods import build_method
from drive_runner.models import build_model
from drive_runner.pipeline import run
from drive_runner.pruning.masks import MaskEngine
from drive_runner.pruning.sampling import batch_stream
from drive_runner.tracking.console import Console, QuietConsole

DEFAULTS = ["dataset=digits", "model=lenet300", "sparsity=0.9", "logger=none"]


def config(method: str, overrides: list[str]):
    return compose_config([f"method={method}", *overrides], DEFAULTS)


def step_costs(cfg, repeats: int = 20) -> tuple[float, float]:
    """Seconds per DRIVE pruning iteration (score + select) and per training step, same batch size."""
    data = build_dataset(cfg.dataset, seed=0)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    engine = MaskEngine(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    stream = batch_stream(data.train, int(cfg.trainer.batch_size), torch.Generator().manual_seed(0))
    batches = [next(stream) for _ in range(repeats)]
    model.train()
    started = time.perf_counter()
    for inputs, targets in batches:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    train_step = (time.perf_counter() - started) / repeats
    drive = build_method(cfg.method, cfg.schedule)
    started = time.perf_counter()
    for index, batch in enumerate(batches, start=1):
        scores = drive.score(model, engine.names, [batch], generator=None, input_shape=data.input_shape)
        engine.prune_to_density(scores, 0.99**index)
    return (time.perf_counter() - started) / repeats, train_step


def main(overrides: list[str]) -> None:
    console = Console(interactive=False)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for method in ("drive", "imp"):
            cfg = config(method, overrides)
            results[method] = run(cfg, Path(scratch) / method, console=QuietConsole())
            console.line(f"{method}: find-mask {results[method]['timings_s']['find_mask']:.2f}s, "
                         f"test_acc {results[method]['test_acc']:.4f}")
    drive, imp = results["drive"], results["imp"]
    cfg = config("drive", overrides)
    per_iteration, per_step = step_costs(cfg)
    print()
    print(f"setting            : {cfg.model.name} on {cfg.dataset.name}, sparsity {drive['target_sparsity']:g}, "
          f"{cfg.trainer.epochs} epochs, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"DRIVE find-mask    : {drive['timings_s']['find_mask']:.2f} s "
          f"(warm-up {drive['timings_s']['warmup']:.2f} s + {cfg.method.iterations} pruning steps "
          f"{drive['timings_s']['prune']:.2f} s), test acc {drive['test_acc']:.4f}")
    print(f"IMP find-mask      : {imp['timings_s']['find_mask']:.2f} s, test acc {imp['test_acc']:.4f}")
    print(f"ratio IMP / DRIVE  : {imp['timings_s']['find_mask'] / drive['timings_s']['find_mask']:.1f} "
          "(how many times faster DRIVE finds its mask)")
    print(f"DRIVE iteration    : {per_iteration * 1e3:.2f} ms = {per_iteration / per_step:.2f} training steps "
          f"({per_step * 1e3:.2f} ms each, batch {cfg.trainer.batch_size})")


if __name__ == "__main__":
    main(sys.argv[1:])
