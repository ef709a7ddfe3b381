"""The end of a `-m` sweep: every job's outcome, the failures listed, and the comparison table.

Runs as a Hydra callback in the launching process, whatever the launcher (basic or joblib), and reads
only what the jobs left on disk, so a job that crashed without a summary still shows up as failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from rich.table import Table

from drive_runner.report.tables import pivot, read_run, to_csv, to_markdown
from drive_runner.tracking.console import rich_console
from drive_runner.tracking.rundir import write_json_atomic, write_text_atomic
from drive_runner.tracking.wandb_logger import WandbLogger


@dataclass
class JobOutcome:
    job_dir: Path
    overrides: list[str]
    status: str  # completed | failed | interrupted | did not finish
    summary: dict = field(default_factory=dict)


@dataclass
class SweepOutcome:
    sweep_dir: Path
    jobs: list[JobOutcome]

    @property
    def failed(self) -> list[JobOutcome]:
        return [job for job in self.jobs if job.status != "completed"]


_last: SweepOutcome | None = None
_running: Path | None = None  # the sweep directory of the sweep in progress in this process


def reset() -> None:
    global _last, _running
    _last = _running = None


def running_sweep_dir() -> Path | None:
    """Where the sweep in progress writes (for its report when it is interrupted before its end)."""
    return _running


def last_report() -> SweepOutcome | None:
    """The outcome of the most recent sweep in this process (the CLI turns failures into its exit code)."""
    return _last


def collect(sweep_dir: Path) -> SweepOutcome:
    jobs = []
    for overrides_file in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"), key=lambda p: _job_order(p.parents[1])):
        job_dir = overrides_file.parents[1]
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        summary = read_run(job_dir) or {}
        jobs.append(JobOutcome(job_dir, overrides, summary.get("status", "did not finish"), summary))
    return SweepOutcome(sweep_dir, jobs)


def _job_order(job_dir: Path):
    return (0, int(job_dir.name)) if job_dir.name.isdigit() else (1, job_dir.name)


def write_and_print(outcome: SweepOutcome) -> None:
    console = rich_console()
    runs = [job.summary for job in outcome.jobs if job.summary]
    write_json_atomic(
        outcome.sweep_dir / "sweep_summary.json",
        {
            "jobs": [
                {"dir": str(job.job_dir), "overrides": job.overrides, "status": job.status,
                 "test_acc": job.summary.get("test_acc"), "achieved_sparsity": job.summary.get("achieved_sparsity"),
                 "find_mask_s": job.summary.get("timings_s", {}).get("find_mask"),
                 "error": job.summary.get("error")}
                for job in outcome.jobs
            ],
            "failed": len(outcome.failed),
        },
    )
    jobs_table = Table(title=f"sweep {outcome.sweep_dir}")
    for column in ("job", "swept values", "status", "test acc", "sparsity", "find-mask s", "total s"):
        jobs_table.add_column(column, overflow="fold")
    swept = swept_overrides(outcome.jobs)
    for job in outcome.jobs:
        timings = job.summary.get("timings_s", {})
        jobs_table.add_row(
            job.job_dir.name, " ".join(swept[job.job_dir]), job.status,
            _fmt(job.summary.get("test_acc"), 4), _fmt(job.summary.get("achieved_sparsity"), 4),
            _fmt(timings.get("find_mask"), 2), _fmt(timings.get("total"), 1),
        )
    console.print(jobs_table)

    accuracy = pivot(runs, "test_acc")
    find_mask = pivot(runs, "timings_s.find_mask")
    for warning in accuracy.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    if accuracy.cells:
        text = (
            "## Test accuracy (%), mean ± std over seeds\n\n" + to_markdown(accuracy, scale=100.0)
            + "\n## Find-mask time (s), mean ± std over seeds\n\n" + to_markdown(find_mask, digits=2)
        )
        write_text_atomic(outcome.sweep_dir / "comparison.md", text)
        write_text_atomic(outcome.sweep_dir / "comparison.csv", to_csv(accuracy))
        console.print(text, markup=False, highlight=False)
    if outcome.failed:
        stopped = [job for job in outcome.failed if job.status != "failed"]
        failed = [job for job in outcome.failed if job.status == "failed"]
        console.print(f"{len(outcome.failed)} of {len(outcome.jobs)} jobs did not complete:", style="bold red")
        for job in outcome.failed:
            reason = job.summary.get("error") or (f"interrupted by {job.summary.get('signal')}" if job.status == "interrupted"
                                                  else "no summary.json (the job did not finish)")
            console.print(f"  {job.job_dir}  {' '.join(job.overrides)}: {job.status}: {reason}", markup=False,
                          highlight=False)
        if stopped:
            console.print(f"the same command continues the {len(stopped)} that were stopped or did not finish",
                          markup=False, highlight=False)
        if failed:
            console.print(f"the {len(failed)} that failed need a change to their config (a failure such as a diverged "
                          "loss recurs with the same one); the same command runs them again from the start",
                          markup=False, highlight=False)


def swept_overrides(jobs: list[JobOutcome]) -> dict[Path, list[str]]:
    """Per job, only the overrides whose value differs between jobs: what the sweep varied."""
    values: dict[str, set] = {}
    for job in jobs:
        for item in job.overrides:
            key, _, value = item.partition("=")
            values.setdefault(key, set()).add(value)
    varied = {key for key, seen in values.items() if len(seen) > 1}
    return {job.job_dir: [o for o in job.overrides if o.partition("=")[0] in varied] for job in jobs}


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class SweepReport(Callback):
    """Hydra callback (configured in conf/config.yaml under hydra.callbacks)."""

    def on_multirun_start(self, config, **kwargs) -> None:
        global _running
        _running = Path(config.hydra.sweep.dir)

    def on_multirun_end(self, config, **kwargs) -> None:
        global _last
        _last = collect(Path(config.hydra.sweep.dir))
        write_and_print(_last)
        if config.table.name:
            write_table_report(_last, config)


def write_table_report(outcome: SweepOutcome, config) -> None:
    """A table run ends with its full report (the paper's numbers beside ours, the figures) in
    <sweep dir>/report, also logged to W&B as a table and images."""
    from drive_runner.report.build import build_report, table_reference

    runs = [run for run in (read_run(job.job_dir) for job in outcome.jobs) if run is not None]
    report = build_report(runs, outcome.sweep_dir / "report", reference=table_reference(runs))  # with their settings
    console = rich_console()
    console.print(f"report of table {config.table.name}: {outcome.sweep_dir / 'report' / 'report.md'} "
                  f"(drive-report {outcome.sweep_dir} prints it)", markup=False, highlight=False)
    wandb = WandbLogger(config.logger, outcome.sweep_dir, config={"table": config.table.name},
                        name=f"{config.table.name}-report", group=f"{config.table.name}-{outcome.sweep_dir.name}",
                        warn=lambda text: console.print(f"warning: {text}", markup=False, highlight=False))
    columns = ["panel", "quantity", "row", "column", "mean", "std", "n"]
    wandb.log_table("report", [dict(zip(columns, row)) for row in report.csv_rows])
    wandb.log_images({path.stem: path for path in report.files if path.suffix == ".png"})
    wandb.finish()
