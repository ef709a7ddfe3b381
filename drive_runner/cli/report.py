"""`drive-report DIR...`: the report of every run below the given directories (a sweep, a table run, a
whole outputs/ tree): tables of mean +- std over seeds with n per cell, the paper's numbers and our
difference beside them when the runs come from a table (or --reference NAME), and the figures; printed
as Markdown (or LaTeX or CSV) and written with the figures to DIR/report (or --out)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from drive_runner.cli.run import leave, quiet_on_closed_pipe
from drive_runner.cli.usage import version_line

PROGRESS_INTERVAL_S = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drive-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directories", nargs="+", metavar="DIR", help="run, sweep, table or outputs directories")
    parser.add_argument("--value", default=None, help="test_acc_percent (default), test_error_percent, "
                        "training_flops_removed_percent, inference_flops_removed_percent, or any summary key, "
                        "dotted for nested ones (timings_s.find_mask)")
    parser.add_argument("--rows", default="method", help="summary key of the rows (default: method)")
    parser.add_argument("--columns", default=None, help="summary key of the columns (default: the reference's, "
                        "else target_sparsity; target_compression for log10 compression)")
    parser.add_argument("--reference", default=None, help="reference data to compare with (default: the table's; "
                        "'none' for no comparison)")
    parser.add_argument("--format", choices=["markdown", "latex", "csv"], default="markdown", help="what to print")
    parser.add_argument("--out", default=None, help="where the files go (default: the first DIR's report/)")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--digits", type=int, default=2, help="decimal places of every number in the tables "
                        "(default: 2)")
    parser.add_argument("-V", "--version", action="version", version=version_line("drive-report"))
    return parser


def main(argv: list[str] | None = None) -> int:
    from drive_runner.errors import DriveRunnerError
    from drive_runner.report.build import build_report, check_quantity, table_reference
    from drive_runner.report.tables import collect_runs

    args = _parser().parse_args(argv)
    runs, last_line = [], [time.monotonic()]

    def progress(done: int, total: int) -> None:
        if total >= 200 and (done == total or time.monotonic() - last_line[0] >= PROGRESS_INTERVAL_S):
            last_line[0] = time.monotonic()
            print(f"drive-report: read {done} of {total} runs", file=sys.stderr, flush=True)

    try:
        for directory in args.directories:
            runs += collect_runs(directory, progress)
        completed = [run for run in runs if run.get("status") == "completed"]
        if not completed:  # nothing to report: nothing written
            print(f"drive-report: error: no completed run below {', '.join(args.directories)}", file=sys.stderr)
            return 1
        if args.value is not None:
            check_quantity(args.value, completed)
        reference = None if args.reference == "none" else (args.reference or table_reference(runs))
        out = Path(args.out) if args.out else Path(args.directories[0]) / "report"
        report = build_report(runs, out, reference=reference, rows=args.rows, columns=args.columns,
                              quantity=args.value, digits=args.digits, draw=not args.no_figures)
    except (FileNotFoundError, DriveRunnerError) as error:
        print(f"drive-report: error: {error}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    chosen = {"markdown": "report.md", "latex": "report.tex", "csv": "report.csv"}[args.format]
    print((out / chosen).read_text(), end="")
    print(f"drive-report: wrote {', '.join(p.name for p in report.files)} to {out}", file=sys.stderr)
    return 0


def entry() -> None:
    leave(quiet_on_closed_pipe(main))
