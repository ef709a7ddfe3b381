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
        self._log_event(event, fields)

    def epoch(self, metrics: dict) -> None:
        """Per-epoch training metrics; the console line is printed by the progress display."""
        self.run_dir.append_metrics({"event": "epoch", **metrics})
        self._log_epoch(metrics)

    def _log_epoch(self, metrics: dict) -> None:
        self.wandb.log({WANDB_EPOCH_KEYS.get(k, k): v for k, v in metrics.items()})

    def _log_event(self, event: str, fields: dict) -> None:
        numeric = {f"{event}/{k}": v for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numeric:
            self.wandb.log(numeric)
        if event == "pruned" and fields.get("layers"):  # the per-layer densities as a W&B table
            self.wandb.log_table("layer_sparsity", fields["layers"])

    def replay_to_wandb(self) -> None:
        """A resumed job's new offline W&B run gets the records kept from earlier attempts first, so the
        one offline run a job leaves (earlier ones are under attempts/) holds its whole history."""
        for record in self.run_dir.read_metrics():
            record = {k: v for k, v in record.items() if k != "time"}
            event = record.pop("event", None)
            if event == "epoch":
                self._log_epoch(record)
            elif event is not None:
                self._log_event(event, record)

    def state_dict(self) -> dict:
        """How far the records had got when the training state was saved."""
        return {"metrics_bytes": self.run_dir.metrics_bytes(), "wandb_id": self.wandb.run_id}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to do: the attempt's metrics.jsonl was cut back to `metrics_bytes` before the run started."""


# metrics.jsonl keys -> W&B keys, grouped into panels by their prefix.
WANDB_EPOCH_KEYS = {
    "train_loss": "train/loss",
    "train_acc": "train/acc",
    "test_loss": "test/loss",
    "test_top1": "test/acc",
    "test_top5": "test/top5",
    "epoch_time_s": "time/epoch_s",
}
