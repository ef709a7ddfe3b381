"""What the per-epoch training-state checkpoint costs: epoch time with and without it, in one process.

    python scripts/bench_checkpoint.py                       # ResNet-20 on digits, 4 epochs, 3 pairs
    python scripts/bench_checkpoint.py model=vgg11 trainer.epochs=2

Arguments are drive-run overrides. Runs the same dense job alternately with the state saved at every
epoch's end (as every run does) and with the save switched off, so both see the same machine load, and
prints each pair's training seconds per epoch, the medians, the overhead, and the size and time of
one save.
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
PAIRS = 3


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
            with_state.append(seconds_per_epoch(cfg, Path(scratch, f"with-{pair}"), True, saves))
            without_state.append(seconds_per_epoch(cfg, Path(scratch, f"without-{pair}"), False, []))
            print(f"pair {pair + 1}: {with_state[-1]:.3f} s/epoch with the checkpoint, "
                  f"{without_state[-1]:.3f} s/epoch without", flush=True)
    with_median, without_median = statistics.median(with_state), statistics.median(without_state)
    print(f"{cfg.model.name} on {cfg.dataset.name}, {cfg.trainer.epochs} epochs per run, {PAIRS} pairs")
    print(f"median: {with_median:.3f} s/epoch with, {without_median:.3f} s/epoch without: "
          f"overhead {100 * (with_median / without_median - 1):+.2f}%")
    print(f"one save: median {1000 * statistics.median(t for t, _ in saves):.1f} ms over {len(saves)} saves, "
          f"state.pt {saves[-1][1] / 2**20:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
