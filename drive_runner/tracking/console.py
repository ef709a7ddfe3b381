"""What the user sees while a run goes: rich progress bars on a terminal, plain lines otherwise.

Every line also goes to the `drive_runner` logger, which Hydra's job logging writes to run.log.
"""

from __future__ import annotations

import logging
import sys
import time

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

log = logging.getLogger("drive_runner")
PLAIN_PROGRESS_INTERVAL_S = 5.0  # off a terminal, a long loop prints a progress line this often


def format_epoch(metrics: dict) -> str:
    parts = [f"[{metrics['phase']}] epoch {metrics['epoch']}", f"lr {metrics['lr']:.4g}",
             f"loss {metrics['train_loss']:.4f}", f"train_acc {metrics['train_acc']:.4f}"]
    if "test_top1" in metrics:
        parts.append(f"test_acc {metrics['test_top1']:.4f}")
    parts.append(f"{metrics['epoch_time_s']:.1f}s")
    return "  ".join(parts)


def rich_console() -> RichConsole:
    """A rich console for stdout; when that is a file or pipe, wide enough that tables do not wrap."""
    console = RichConsole(file=sys.stdout)
    return console if console.is_terminal else RichConsole(file=sys.stdout, width=140)


class Console:
    def __init__(self, interactive: bool | None = None):
        self.rich = rich_console()
        self.interactive = self.rich.is_terminal if interactive is None else interactive
        self._progress: Progress | None = None
        self._epoch_task = self._batch_task = None
        self._pruning: Progress | None = None  # the bar of a pruning loop
        self._pruning_text = ""
        self._last_plain_line = float("-inf")

    # ----------------------------------------------------------------- lines
    def line(self, text: str) -> None:
        log.info(text)
        self._print(text)

    def _print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        elif self.interactive:
            self.rich.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def warn(self, text: str) -> None:
        log.warning(text)
        print(f"warning: {text}", file=sys.stderr, flush=True)

    # ----------------------------------------------------------------- progress (the loop's Progress protocol)
    def prune_step(self, step_name: str, step: int, total: int, density: float) -> None:
        """Progress of a pruning loop (DRIVE's and SynFlow's steps, IMP's levels): a bar on a terminal,
        off one the first and last step and a line every few seconds between."""
        text = f"[prune] {step_name} {step}/{total}, density {density:.4g}"
        log.info(text)
        if self.interactive and self._progress is None:
            if self._pruning is None:
                self._pruning = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         TimeElapsedColumn(), TimeRemainingColumn(), console=self.rich, transient=True)
                self._pruning.start()
                self._pruning.add_task(text, total=total)
            self._pruning.update(self._pruning.task_ids[0], completed=step, description=text)
            self._pruning_text = text
            if step >= total:
                self._end_pruning()
            return
        now = time.monotonic()
        if step in (1, total) or now - self._last_plain_line >= PLAIN_PROGRESS_INTERVAL_S:
            self._last_plain_line = now
            self._print(text)

    def _end_pruning(self) -> None:
        """Close the pruning bar, leaving its last state as a line."""
        if self._pruning is not None:
            self._pruning.stop()
            self._pruning = None
            self._print(self._pruning_text)

    def start_phase(self, phase: str, epochs: int, batches_per_epoch: int) -> None:
        self._end_pruning()  # IMP trains between its levels
        if not self.interactive:
            self.line(f"[{phase}] {epochs} epochs x {batches_per_epoch} batches")
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.rich, transient=True,
        )
        self._progress.start()
        self._epoch_task = self._progress.add_task(f"{phase} epochs", total=epochs)
        self._batch_task = self._progress.add_task("batches", total=batches_per_epoch)

    def advance_batch(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._batch_task)

    def end_epoch(self, metrics: dict) -> None:
        self.line(format_epoch(metrics))
        if self._progress is not None:
            self._progress.advance(self._epoch_task)
            self._progress.reset(self._batch_task)

    def end_phase(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ----------------------------------------------------------------- final result
    def result_line(self, summary: dict) -> None:
        self.line(
            f"done: test_acc {summary['test_acc']:.4f}  sparsity {summary['achieved_sparsity']:.4f}  "
            f"{summary['timings_s']['total']:.1f}s  {summary['run_dir']}"
        )

    def summary_table(self, summary: dict) -> None:
        trainer = " (NeuroFlux)" if "neuroflux" in summary else ""
        table = Table(title=f"drive-run: {summary.get('method')}{trainer} on {summary.get('model')}/{summary.get('dataset')}")
        table.add_column("result")
        table.add_column("value", justify="right", overflow="fold")  # long paths wrap instead of being cut
        for key, value in summary_rows(summary):
            table.add_row(key, value)
        self.rich.print(table)
        for key, value in summary_rows(summary):
            log.info("%s: %s", key, value)


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    timings = summary.get("timings_s", {})
    rows = [
        ("status", str(summary.get("status"))),
        ("test accuracy (top-1)", f"{summary.get('test_acc', float('nan')):.4f}"),
        ("test accuracy (top-5)", f"{summary.get('test_top5', float('nan')):.4f}"),
        ("target / achieved sparsity", f"{_number(summary.get('target_sparsity'))} / {_number(summary.get('achieved_sparsity'))}"),
        ("parameters non-zero / total", f"{summary.get('params_nonzero'):,} / {summary.get('params_total'):,}"),
        ("FLOPs sparse / dense", f"{summary.get('flops_sparse'):,} / {summary.get('flops_dense'):,}"),
        ("collapsed layers", ", ".join(summary.get("collapsed_layers", [])) or "none"),
        ("time warm-up / prune / train / eval", " / ".join(f"{timings.get(k, 0):.1f}s" for k in ("warmup", "prune", "train", "eval"))),
        ("total time", f"{timings.get('total', 0):.1f}s"),
        ("run directory", str(summary.get("run_dir"))),
    ]
    if "flops_reduction" in summary:  # structured pruning: the training cost it removed
        epoch_time = summary.get("epoch_time_reduction")
        rows[6:6] = [
            ("training FLOPs per sample, final vs initial", _change(summary["flops_reduction"])),
            ("epoch time, last vs first", "no channel removed" if epoch_time is None else _change(epoch_time)),
        ]
    return rows


def _change(reduction: float) -> str:
    """A reduction as the signed change it is: 0.039 -> -3.9%, and a growth -0.612 -> +61.2%."""
    return f"{0.0 - reduction:+.1%}"


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.6g}"


class QuietConsole(Console):
    """Warnings only: for programs that run the pipeline and print their own numbers (benchmarks)."""

    def __init__(self):
        super().__init__(interactive=False)

    def _print(self, text: str) -> None:
        pass

    def summary_table(self, summary: dict) -> None:
        pass


class SilentConsole(QuietConsole):
    """Nothing at all: a data-parallel rank other than 0, whose lines and warnings rank 0 already gives."""

    def warn(self, text: str) -> None:
        pass
