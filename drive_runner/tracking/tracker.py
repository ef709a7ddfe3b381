"""One place where a run's events go: metrics.jsonl, W&B and the console."""

from __future__ import annotations

from drive_runner.tracking.console import Console
from drive_runner.tracking.rundir import RunDirectory
from drive_runner.tracking.wandb_logger import WandbLogger


class Tracker:
    def __init__(self, run_dir: RunDirectory, console: Console, wandb: WandbLogger):
        self.run_dir = run_dir
        self.console = console
        self.wandb = wandb

    def event(self, event: str, **fields) -> None:
        """A phase event (start, end, a pruning step, the final evaluation)."""
        self.run_dir.append_metrics({"event": event, **fields})
        numeric = {f"{event}/{k}": v for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numeric:
            self.wandb.log(numeric)

    def epoch(self, metrics: dict) -> None:
        """Per-epoch training metrics; the console line is printed by the progress display."""
        self.run_dir.append_metrics({"event": "epoch", **metrics})
        self.wandb.log({WANDB_EPOCH_KEYS.get(k, k): v for k, v in metrics.items()})


# metrics.jsonl keys -> W&B keys, grouped into panels by their prefix.
WANDB_EPOCH_KEYS = {
    "train_loss": "train/loss",
    "train_acc": "train/acc",
    "test_loss": "test/loss",
    "test_top1": "test/acc",
    "test_top5": "test/top5",
    "epoch_time_s": "time/epoch_s",
}
