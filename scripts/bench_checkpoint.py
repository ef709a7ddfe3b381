"""What the per-epoch training-state checkpoint costs: epoch time with and without it, in one process.

    python scripts/bench_checkpoint.py                       # ResNet-20 on digits, 4 epochs, 3 pairs
    python scripts/bench_checkpoint.py model=vgg11 trainer.epochs=2

Arguments are drive-run overrides. Runs the same dense job alternately with the state saved at every
epoch's end (as every run does) and with the save switched off, so both see the same machine load (each
pair in the other order from the last), and prints each pair's training seconds per epoch, the medians
and the overhead they give, and the size and time of one save. On shared cores epoch times vary by more
than a save costs, so it also prints the overhead one save adds to the median epoch without saving.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from drive_runner.cli.compose import compose_config
from drive_runner.pipeline import run
from drive_runner.run_state import RunState
from drive_runner.tracking.console import QuietConsole

DEFAULTS = ["dataset=digits", "model=resnet20", "method=dense", "trainer.epochs=4", "logger=none",
            "hardware.device=cpu"]
PAIRS = 5


def seconds_per_epoch(cfg, run_dir: Path, saving: bool, saves: list[tuple[float, int]]) -> float:
    real_save = RunState.save

    def timed_save(self):
        started = time.perf_counter()
        real_save(self)
        saves.append((time.perf_counter() - started, self.path.stat().st_size))

    with mock.patch.object(RunState, "save", timed_save if saving else lambda self: None):
        summary = run(cfg, run_dir, console=QuietConsole())
    return summary["timings_s"]["train"] / summary["epochs"]


def main(overrides: list[str]) -> None:
    cfg = compose_config(overrides, DEFAULTS)
    with_state, without_state, saves = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for pair in range(PAIRS):
            for saving in (True, False) if pair % 2 == 0 else (False, True):
                seconds = seconds_per_epoch(cfg, Path(scratch, f"{saving}-{pair}"), saving, saves if saving else [])
                (with_state if saving else without_state).append(seconds)
            print(f"pair {pair + 1}: {with_state[-1]:.3f} s/epoch with the checkpoint, "
                  f"{without_state[-1]:.3f} s/epoch without", flush=True)
    with_median, without_median = statistics.median(with_state), statistics.median(without_state)
    print(f"{cfg.model.name} on {cfg.dataset.name}, {cfg.trainer.epochs} epochs per run, {PAIRS} pairs")
    print(f"median: {with_median:.3f} s/epoch with, {without_median:.3f} s/epoch without: "
          f"overhead {100 * (with_median / without_median - 1):+.2f}%")
    save_s = statistics.median(t for t, _ in saves)
    print(f"one save: median {1000 * save_s:.1f} ms over {len(saves)} saves, state.pt {saves[-1][1] / 2**20:.2f} MB; "
          f"one save per epoch adds {100 * save_s / without_median:.2f}% to the median epoch without saving")


if __name__ == "__main__":
    main(sys.argv[1:])
