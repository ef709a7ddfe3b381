"""`python -m drive_runner.report DIR`: a method x sparsity table (mean ± std over seeds, n per cell)
from every summary.json below DIR, as Markdown, LaTeX or CSV, ready for a paper. Runs that differ in
any setting but the seed get rows of their own."""

from __future__ import annotations

import argparse
import sys

from drive_runner.report.tables import collect_runs, pivot, to_csv, to_latex, to_markdown

FORMATS = {"markdown": to_markdown, "latex": to_latex}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drive_runner.report", description=__doc__)
    parser.add_argument("directory", help="a run, sweep or outputs directory")
    parser.add_argument("--value", default="test_acc", help="summary key, dotted for nested ones (timings_s.find_mask)")
    parser.add_argument("--rows", default="method")
    parser.add_argument("--columns", default="target_sparsity")
    parser.add_argument("--format", choices=[*FORMATS, "csv"], default="markdown")
    parser.add_argument("--scale", type=float, default=None, help="multiply values (default: 100 for accuracies)")
    parser.add_argument("--digits", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        runs = collect_runs(args.directory)
    except FileNotFoundError as error:
        print(f"drive-report: error: {error}", file=sys.stderr)
        return 2
    table = pivot(runs, args.value, args.rows, args.columns)
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not table.cells:
        print(f"drive-report: error: no completed run with '{args.value}' below {args.directory}", file=sys.stderr)
        return 1
    if args.format == "csv":
        print(to_csv(table), end="")
        return 0
    scale = args.scale if args.scale is not None else (100.0 if "acc" in args.value else 1.0)
    print(FORMATS[args.format](table, scale=scale, digits=args.digits), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
