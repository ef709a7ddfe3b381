"""Tables from many run directories: method x sparsity, mean +- std over seeds, as in the papers.

Reads only summary.json files, so it works on any mix of single runs and sweeps.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass
from pathlib import Path


def collect_runs(root: str | Path) -> list[dict]:
    """Every summary.json below `root`, each with its `run_dir`."""
    runs = []
    for path in sorted(Path(root).rglob("summary.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        summary["run_dir"] = str(path.parent)
        runs.append(summary)
    return runs


@dataclass
class Cell:
    values: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


@dataclass
class Pivot:
    row_key: str
    col_key: str
    value_key: str
    rows: list
    cols: list
    cells: dict  # (row, col) -> Cell

    def cell(self, row, col) -> Cell | None:
        return self.cells.get((row, col))


def pivot(runs: list[dict], value_key: str, row_key: str = "method", col_key: str = "target_sparsity") -> Pivot:
    """Completed runs grouped by (row, col); each cell holds one value per seed."""
    cells: dict = {}
    for run in runs:
        if run.get("status") != "completed":
            continue
        value = _lookup(run, value_key)
        if value is None:
            continue
        key = (run.get(row_key), _round(run.get(col_key)))
        cells.setdefault(key, Cell([])).values.append(float(value))
    rows = sorted({r for r, _ in cells}, key=str)
    cols = sorted({c for _, c in cells}, key=lambda c: (c is None, c))
    return Pivot(row_key, col_key, value_key, rows, cols, cells)


def _lookup(run: dict, dotted: str):
    value = run
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _round(value):
    return round(value, 6) if isinstance(value, float) else value


def format_cell(cell: Cell | None, scale: float = 1.0, digits: int = 2) -> str:
    if cell is None:
        return "-"
    text = f"{cell.mean * scale:.{digits}f}"
    if len(cell.values) > 1:
        text += f" ± {cell.std * scale:.{digits}f}"
    return text


def to_markdown(table: Pivot, scale: float = 1.0, digits: int = 2) -> str:
    header = [f"{table.row_key} \\ {table.col_key}", *[str(c) for c in table.cols]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        cells = [format_cell(table.cell(row, col), scale, digits) for col in table.cols]
        lines.append("| " + " | ".join([str(row), *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: Pivot, scale: float = 1.0, digits: int = 2) -> str:
    lines = [
        "\\begin{tabular}{l" + "r" * len(table.cols) + "}",
        "\\toprule",
        " & ".join([table.row_key, *[str(c) for c in table.cols]]) + " \\\\",
        "\\midrule",
    ]
    for row in table.rows:
        cells = [format_cell(table.cell(row, col), scale, digits).replace("±", "$\\pm$") for col in table.cols]
        lines.append(" & ".join([str(row), *cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Pivot) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([table.row_key, table.col_key, f"{table.value_key}_mean", f"{table.value_key}_std", "n"])
    for (row, col), cell in sorted(table.cells.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))):
        writer.writerow([row, col, cell.mean, cell.std, len(cell.values)])
    return out.getvalue()
