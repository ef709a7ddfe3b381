"""What a report reads from runs' metrics.jsonl beyond their summaries: IMP's level curves, the
per-epoch series of PruneTrain, and when the runs started and ended."""

from __future__ import annotations

import json
from pathlib import Path


def events(run: dict) -> list[dict]:
    """The run's metrics.jsonl records (none when the file is missing or unreadable)."""
    try:
        text = (Path(run["run_dir"]) / "metrics.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError, KeyError):
        return []


IMP_QUANTITIES = {"test_acc": "test accuracy (%)", "early_stop_step": "early-stop iteration",
                  "early_stop_test_acc": "test accuracy at early stop (%)"}


def imp_curves(runs: list[dict]) -> dict:
    """Per quantity of IMP_QUANTITIES, per curve ("ticket", and the control's kind): density -> values over seeds
    (the last epoch's test accuracy, or the early-stopping point's iteration or test accuracy), from the runs'
    metrics.jsonl (each level's training) and the final sparse training; each file is read once."""
    found: dict = {quantity: {} for quantity in IMP_QUANTITIES}
    for run in runs:
        if run.get("method") != "imp":
            continue
        for row in events(run):
            if row.get("event") not in ("imp_level", "imp_control"):
                continue
            name = "ticket" if row["event"] == "imp_level" else f"{row['control']} control"
            for quantity, curves in found.items():
                if row.get(quantity) is not None:
                    curves.setdefault(name, {}).setdefault(round(row["density"], 6), []).append(row[quantity])
        for quantity, curves in found.items():
            if "ticket" in curves and run.get(quantity) is not None and run.get("ablation", "none") == "none":
                density = round(1.0 - run["achieved_sparsity"], 6)
                curves["ticket"].setdefault(density, []).append(run[quantity])
    return found


def compute_used(runs: list[dict]) -> dict | None:
    """The work behind a set of runs: their summed run time, and the wall-clock from the first record of
    any run to the last record of any run (what a table took, however many ran at once)."""
    stamps = [row["time"] for run in runs for row in events(run) if isinstance(row.get("time"), (int, float))]
    if not stamps:
        return None
    run_seconds = sum(float(run.get("timings_s", {}).get("total", 0.0)) for run in runs)
    return {"wall_clock_s": max(stamps) - min(stamps), "run_time_s": run_seconds}
