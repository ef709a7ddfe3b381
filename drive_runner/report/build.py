"""A report of many runs, as a paper would print it: one table per panel (each model x dataset), mean +-
std over seeds with n per cell, the paper's number and our difference beside it when the runs come from a
table with a reference, find-mask times, IMP level curves, mask-ablation effects, and the figures.

Written as report.md, report.tex (booktabs), report.csv, report.json (what was drawn) and PNG + PDF figures.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from drive_runner.report import figures
from drive_runner.report.events import IMP_QUANTITIES, compute_used, imp_curves
from drive_runner.report.intervals import half_width
from drive_runner.report.tables import format_cell, pivot, to_latex, to_markdown
from drive_runner.tables.references import QUANTITIES, Comparison, Reference, load_reference, quantity_of
from drive_runner.tracking.rundir import write_json_atomic, write_text_atomic

@dataclass
class Panel:
    title: str
    runs: list[dict]


@dataclass
class Report:
    markdown: str
    files: list[Path] = field(default_factory=list)
    drawn: dict = field(default_factory=dict)  # figure name -> the series it holds
    csv_rows: list[list] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def table_reference(runs: list[dict]) -> str | None:
    """The reference named by the table the runs came from (table.reference in their config), if one."""
    names = {run.get("settings", {}).get("table.reference") for run in runs} - {None}
    return names.pop() if len(names) == 1 else None


def _changed_tables(runs: list[dict]) -> str:
    """Why a table's runs are not compared with the paper: the command line changed what the table measures."""
    def overrides(run: dict) -> tuple:
        value = run.get("settings", {}).get("table.changed") or ()
        return tuple(json.loads(value) if isinstance(value, str) else value)  # settings hold lists as JSON

    changed = {(run.get("settings", {}).get("table.name"), overrides(run)) for run in runs}
    notes = [f"Table {name} was run with {', '.join(overrides)}, which change what it measures: its runs are not "
             f"compared with the paper's numbers (the reference below is what the table reproduces as shipped)."
             for name, overrides in sorted(changed) if name and overrides]
    return "\n".join(notes)


def panels(runs: list[dict]) -> list[Panel]:
    """Runs split by model and dataset, the way papers give each network its own table."""
    groups: dict = {}
    for run in runs:
        groups.setdefault((str(run.get("model")), str(run.get("dataset"))), []).append(run)
    return [Panel(f"{model} on {dataset}", group) for (model, dataset), group in sorted(groups.items())]


def check_quantity(quantity: str, runs: list[dict]) -> None:
    """--value names a quantity, or a summary key with a number in some run; else refused with what exists."""
    from drive_runner.errors import ConfigError
    from drive_runner.report.tables import numeric_keys

    keys = numeric_keys(runs)
    if quantity not in QUANTITIES and quantity not in keys:
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        raise ConfigError("--value", f"{quantity!r} is neither a quantity ({', '.join(QUANTITIES)}) nor a summary key "
                                     f"with a number in these runs ({shown})")


def build_report(runs: list[dict], out_dir: Path | None, *, reference: str | None = None, rows: str = "method",
                 columns: str | None = None, quantity: str | None = None, digits: int = 2,
                 draw: bool = True) -> Report:
    """The report of `runs`; files go to `out_dir` unless it is None."""
    ref = load_reference(reference) if reference else None
    completed = [run for run in runs if run.get("status") == "completed"]
    changed = _changed_tables(completed)  # a table run that measured something else is not held to the paper
    comparisons = ref.comparisons if ref and not changed else []
    main = (ref.comparisons or [None])[0] if ref else None
    quantity = quantity or (main.quantity if main else "test_acc_percent")
    columns = columns or (main.columns if main else "target_sparsity")
    measure = quantity_of(quantity)
    report = Report("")
    parts = [_header(ref, len(runs), len(completed), compute_used(runs), changed)]
    latex = []
    for panel in panels(completed):
        table = pivot(panel.runs, measure.summary_key, rows, columns, convert=measure.convert)
        if not table.cells:
            continue
        parts.append(f"## {panel.title}: {measure.label}\n\n" + to_markdown(table, digits=digits))
        latex.append(f"% {panel.title}: {measure.label}\n" + to_latex(table, digits=digits))
        report.csv_rows += [[panel.title, quantity, row, col, cell.mean, cell.std, len(cell.values)]
                            for (row, col), cell in sorted(table.cells.items(), key=lambda item: str(item[0]))]
        for comparison in comparisons:
            parts.append(_comparison(panel, comparison, rows, digits))
        parts += [section for section in (_find_mask_times(panel.runs, rows, columns),
                                          _ablations(panel.runs, rows, columns, measure, digits),
                                          _imp_levels(panel.runs, digits)) if section]
        parts += [f"warning: {warning}\n" for warning in table.warnings]
        report.warnings += table.warnings
    if not completed:
        parts.append("No completed run.\n")
    report.markdown = "\n".join(part.rstrip() + "\n" for part in parts if part)
    if out_dir is not None:
        _write(report, Path(out_dir), latex, completed, ref, rows, columns, quantity, draw, compare=not changed)
    return report


def _header(ref: Reference | None, total: int, completed: int, compute: dict | None, changed: str = "") -> str:
    lines = [f"# Report: {completed} completed of {total} runs\n"]
    if compute:
        lines += [f"Wall-clock {compute['wall_clock_s'] / 60:.1f} min from the first run's first record to the last "
                  f"run's last; {compute['run_time_s'] / 60:.1f} min of run time in all.\n"]
    if changed:
        lines += [changed, ""]
    if ref is None:
        return "\n".join(lines)
    lines += [f"Reference: {ref.paper} {ref.source}.", "", f"The paper's recipe: {ref.recipe}", ""]
    if ref.differences:
        lines += ["What this project's runs do differently:", *[f"- {d}" for d in ref.differences], ""]
    if ref.expectations:
        lines += ["What the paper leads one to expect:", *[f"- {e}" for e in ref.expectations], ""]
    if not ref.comparisons:
        lines += ["This reference has no numbers to put beside ours.", ""]
    lines += [f"- {note}" for note in ref.notes]
    return "\n".join(lines)


def matches(entry: dict, run: dict) -> bool:
    """Whether a run is one the reference entry describes (summary fields; numbers to 6 decimals)."""
    def same(a, b) -> bool:
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return round(float(a), 6) == round(float(b), 6)
        return a == b

    return all(same(run.get(key), value) for key, value in entry.items() if key != "value")


def comparison_rows(panel_runs: list[dict], comparison: Comparison, rows: str) -> list[tuple]:
    """(our row label, column, our cell, the paper's value) for every reference entry of this panel."""
    measure = comparison.measure
    table = pivot(panel_runs, measure.summary_key, rows, comparison.columns, convert=measure.convert)
    found = []
    for entry in comparison.entries:
        for (label, col), cell in sorted(table.cells.items(), key=lambda item: str(item[0])):
            if matches(entry, cell.runs[0]):
                found.append((label, col, cell, entry["value"]))
    return found


def _comparison(panel: Panel, comparison: Comparison, rows: str, digits: int) -> str:
    found = comparison_rows(panel.runs, comparison, rows)
    if not found:
        return ""
    lines = [f"### {panel.title}: ours against the paper, {comparison.measure.label}\n",
             f"| {rows} | {comparison.columns} | ours | paper | ours - paper | its 95% interval | recipe |",
             "|---|---|---|---|---|---|---|"]
    for label, col, cell, paper in found:
        difference, half = cell.mean - paper, half_width(cell.values)
        interval = ("n=1: none" if half is None
                    else f"[{difference - half:+.{digits}f}, {difference + half:+.{digits}f}]")
        lines.append(f"| {label} | {col} | {format_cell(cell, digits=digits)} | {paper:.{digits}f} | "
                     f"{difference:+.{digits}f} | {interval} | {_recipe(cell.runs[0])} |")
    return "\n".join(lines) + "\n"


def _recipe(run: dict) -> str:
    """Which recipe a row trained: the table's recipe by name, with the epochs it ran."""
    settings = run.get("settings", {})
    epochs = run.get("epochs", settings.get("trainer.epochs"))
    recipe = settings.get("table.recipe")
    return f"{recipe}, {epochs} epochs" if recipe else f"{epochs} epochs"


def _find_mask_times(runs: list[dict], rows: str, columns: str) -> str:
    """Find-mask time per method, and DRIVE's speed-up over IMP where both ran."""
    times = pivot(runs, "timings_s.find_mask", rows, columns)
    if not times.cells:
        return ""
    text = "### find-mask time (s)\n\n" + to_markdown(times, digits=2)
    ratios = []
    for col in times.cols:
        drive = [cell for (row, c), cell in times.cells.items() if c == col and str(row).startswith("drive")]
        imp = [cell for (row, c), cell in times.cells.items() if c == col and str(row).startswith("imp")]
        if len(drive) == 1 and len(imp) == 1 and drive[0].mean > 0:
            ratios.append(f"{columns}={col}: IMP {imp[0].mean:.1f} s / DRIVE {drive[0].mean:.2f} s = "
                          f"{imp[0].mean / drive[0].mean:.0f}x")
    if ratios:
        text += "\nDRIVE finds its mask faster than IMP: " + "; ".join(ratios) + " (the paper: 43x to 869x).\n"
    return text


def _ablations(runs: list[dict], rows: str, columns: str, measure, digits: int) -> str:
    """The effect of shuffling and re-initialising each method's mask, when the runs ablate."""
    kinds = sorted({run.get("ablation") for run in runs} - {None})
    if kinds == [] or kinds == ["none"]:
        return ""
    lines = [f"### mask ablations: {measure.label} (difference from the mask as found)\n",
             f"| method | {columns} | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    by_cell: dict = {}
    for run in runs:
        value = run.get(measure.summary_key)
        if value is not None:
            by_cell.setdefault((run.get(rows), run.get(columns)), {}).setdefault(run.get("ablation"), []).append(
                measure.convert(value))
    for (method, col), values in sorted(by_cell.items(), key=lambda item: str(item[0])):
        found = statistics.fmean(values["none"]) if values.get("none") else None
        cells = []
        for kind in kinds:
            if not values.get(kind):
                cells.append("-")
                continue
            mean = statistics.fmean(values[kind])
            delta = "" if kind == "none" or found is None else f" ({mean - found:+.{digits}f})"
            cells.append(f"{mean:.{digits}f}{delta} (n={len(values[kind])})")
        lines.append(f"| {method} | {col} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _imp_levels(runs: list[dict], digits: int) -> str:
    """IMP's curves level by level beside their control: the test accuracy, and the early-stopping point where
    the runs evaluated a validation split."""
    sections = []
    for quantity, curves in imp_curves(runs).items():
        if len(curves) < 2:  # a level curve is only a table of its own beside a control
            continue
        scale, places = (1, 0) if quantity == "early_stop_step" else (100, digits)
        names = list(curves)
        densities = sorted({d for curve in curves.values() for d in curve}, reverse=True)
        lines = [f"### IMP level by level: {IMP_QUANTITIES[quantity]}\n", "| density (%) | " + " | ".join(names) + " |",
                 "|---|" + "---|" * len(names)]
        for density in densities:
            cells = []
            for name in names:
                values = [scale * v for v in curves[name].get(density, [])]
                cells.append("-" if not values else f"{statistics.fmean(values):.{places}f}"
                             + (f" ± {statistics.stdev(values):.{places}f}" if len(values) > 1 else "")
                             + f" (n={len(values)})")
            lines.append(f"| {100 * density:.2f} | " + " | ".join(cells) + " |")
        sections.append("\n".join(lines) + "\n")
    return "\n".join(sections)


def _write(report: Report, out_dir: Path, latex: list[str], runs: list[dict], ref: Reference | None, rows: str,
           columns: str, quantity: str, draw: bool, compare: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["panel", "quantity", rows, columns, "mean", "std", "n"])
    writer.writerows(report.csv_rows)
    outputs = {"report.md": report.markdown, "report.tex": "\n".join(latex), "report.csv": buffer.getvalue()}
    for name, text in outputs.items():
        write_text_atomic(out_dir / name, text)
        report.files.append(out_dir / name)
    if draw:
        drawn = figures.draw_all(runs, out_dir, ref if compare else None, rows, columns, quantity,
                                 [p.runs for p in panels(runs)])
        report.drawn = {name: labels for name, (labels, _) in drawn.items()}
        report.files += [path for _, paths in drawn.values() for path in paths]
    write_json_atomic(out_dir / "report.json", {"files": [p.name for p in report.files], "figures": report.drawn,
                                                "reference": ref.name if ref else None})
    report.files.append(out_dir / "report.json")
