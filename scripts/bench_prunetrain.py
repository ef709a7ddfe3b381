"""Dense training against PruneTrain on the same model, data and recipe, in one process.

    python scripts/bench_prunetrain.py                # ResNet-20 on digits at 32x32, 200 epochs each (~28 min on 2 cores)
    python scripts/bench_prunetrain.py model=resnet32 trainer.epochs=100 'trainer.lr_milestones=[50,75]'

Arguments are drive-run overrides for both runs (method.* ones only reach PruneTrain). Prints accuracy,
training FLOPs per sample and wall-clock of every epoch for both runs, then the reductions: final vs
initial training FLOPs, the whole run's training FLOPs against dense, last-epoch time against the
first epoch and against dense's last epoch, the same over means of the first and last ten epochs (single
epochs on shared cores vary by 10-20%), and the accuracy difference.

The default recipe is `prunetrain_digits` (200 epochs): on the 30-epoch digits recipe the penalty has too
few steps to bring any channel under the threshold, and the benchmark would only measure noise.

With a memory budget (`hardware.memory_budget_mb=B trainer.batch_size=auto`) both runs start from the batch
that fits; PruneTrain's batch grows after each reconfiguration that frees memory (the dynamic mini-batch),
and the table gets its batch per epoch, the summary its batch per interval.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from statistics import fmean

from drive_runner.cli.compose import compose_config
from drive_runner.data import describe
from drive_runner.models import build_model
from drive_runner.pipeline import run
from drive_runner.tracking.console import QuietConsole
from drive_runner.train.flops import training_flops

DEFAULTS = ["dataset=digits", "dataset.image_size=32", "model=resnet20", "recipe=prunetrain_digits", "logger=none"]


def config(method: str, overrides: list[str]):
    mine = [o for o in overrides if not o.startswith("method.") or method == "prunetrain"]
    return compose_config([f"method={method}", *mine], DEFAULTS)


def epochs(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["event"] == "epoch"]


def main(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        dense_cfg, prune_cfg = config("dense", overrides), config("prunetrain", overrides)
        print(f"dense and PruneTrain: {dense_cfg.model.name} on {dense_cfg.dataset.name}, "
              f"{dense_cfg.trainer.epochs} epochs, batch {dense_cfg.trainer.batch_size}, "
              f"penalty ratio {prune_cfg.method.penalty_ratio}, reconfiguration every {prune_cfg.method.interval} epochs",
              flush=True)
        dense = run(dense_cfg, Path(scratch) / "dense", console=QuietConsole())
        pruned = run(prune_cfg, Path(scratch) / "prunetrain", console=QuietConsole())
        dense_epochs, pruned_epochs = epochs(Path(scratch) / "dense"), epochs(Path(scratch) / "prunetrain")

    input_shape, num_classes = describe(dense_cfg.dataset)
    dense_flops = training_flops(build_model(dense_cfg.model, input_shape, num_classes), input_shape)
    dynamic = pruned.get("dynamic_batch")  # only under a memory budget
    print(f"\n{'epoch':>5} | {'dense s':>8} {'dense MFLOPs':>12} {'dense acc':>9} | "
          f"{'PT s':>8} {'PT MFLOPs':>10} {'PT acc':>7} {'PT channels':>11}" + (f" {'PT batch':>8}" if dynamic else ""))
    for d, p in zip(dense_epochs, pruned_epochs):
        print(f"{d['epoch']:>5} | {d['epoch_time_s']:>8.2f} {dense_flops / 1e6:>12.1f} {d.get('test_top1', float('nan')):>9.4f} | "
              f"{p['epoch_time_s']:>8.2f} {p['train_flops_per_sample'] / 1e6:>10.1f} {p.get('test_top1', float('nan')):>7.4f} "
              f"{sum(p['channels'].values()):>11}" + (f" {p['batch_size']:>8}" if dynamic else ""))

    dense_times = [e["epoch_time_s"] for e in dense_epochs]
    pruned_times = [e["epoch_time_s"] for e in pruned_epochs]
    window = max(1, min(10, len(dense_times) // 2))
    print()
    print(f"accuracy           : dense {dense['test_acc']:.4f}, PruneTrain {pruned['test_acc']:.4f} "
          f"({(pruned['test_acc'] - dense['test_acc']) * 100:+.2f} points)")
    print(f"parameters         : dense {dense['params_total']:,}, PruneTrain {pruned['params_total']:,} "
          f"({1 - pruned['params_total'] / dense['params_total']:.1%} fewer)")
    print(f"channels           : {sum(pruned['channels_initial'].values())} -> {sum(pruned['channels_final'].values())}")
    print(f"training FLOPs     : final vs initial {-pruned['flops_reduction']:+.1%}; "
          f"whole run vs dense {-pruned['training_flops_reduction']:+.1%}")
    shrunk = pruned["epoch_time_reduction"]
    own = "no channel removed" if shrunk is None else f"{-shrunk:+.1%}"
    print(f"epoch time         : PruneTrain last vs first {own}; "
          f"PruneTrain last vs dense last {pruned_epochs[-1]['epoch_time_s'] / dense_times[-1] - 1:+.1%}; "
          f"dense last vs first {dense_times[-1] / dense_times[0] - 1:+.1%} (the noise floor)")
    print(f"epoch time, {window}-epoch means: PruneTrain last vs first {fmean(pruned_times[-window:]) / fmean(pruned_times[:window]) - 1:+.1%}; "
          f"PruneTrain last vs dense last {fmean(pruned_times[-window:]) / fmean(dense_times[-window:]) - 1:+.1%}; "
          f"dense last vs first {fmean(dense_times[-window:]) / fmean(dense_times[:window]) - 1:+.1%}")
    print(f"total training time: dense {dense['timings_s']['train']:.1f} s, PruneTrain {pruned['timings_s']['train']:.1f} s")
    if dynamic:
        intervals = ", ".join(f"{h['batch_size']} (lr x {h['lr_scale']:g}) from epoch {h['from_epoch']}"
                              for h in dynamic["history"])
        memory = pruned["memory"]
        print(f"PruneTrain batch   : {intervals}; at most {dynamic['max_batch']}; measured peak "
              f"{memory['measured_peak_mb']:.1f} MB of {memory['budget_mb']:g} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
