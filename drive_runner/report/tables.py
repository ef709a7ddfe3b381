"""Tables from many run directories: method x sparsity, mean +- std over seeds, as in the papers.

Reads each run's summary.json and the resolved config.yaml beside it, so it works on any mix of
single runs and sweeps, and never averages unlike runs: runs that differ in any setting other than the
seed (a model, an epoch budget, a scope, a method knob) land in different rows, labelled with what
differs. Cosmetic keys (logging, loader workers, evaluation batch size, data location) are ignored.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Config keys that do not change a result.
COSMETIC_PREFIXES = ("logger.", "hydra.", "table.")  # table.*: which sweep a run came from, not how it ran
COSMETIC_KEYS = {"hardware.num_workers", "hardware.threads", "trainer.eval_batch_size", "trainer.eval_every",
                 "dataset.root", "dataset.download"}
# The config keys a summary field comes from, and the config groups a row value owns (a method's
# knobs and its schedule are part of what "the method" means).
SOURCES = {"method": ("method.name",), "model": ("model.name",), "dataset": ("dataset.name",),
           "target_sparsity": ("sparsity", "compression"), "target_compression": ("sparsity", "compression"),
           "seed": ("seed",), "epochs": ("trainer.epochs",), "ablation": ("prune.ablation",)}
OWNED = {"method": ("method.", "schedule.")}
HEADLINE = ("model.name", "dataset.name", "trainer.name", "trainer.epochs")


def collect_runs(root: str | Path, progress=None) -> list[dict]:
    """Every summary.json below `root`, each with its `run_dir` and flattened `settings` (config.yaml);
    `progress(done, total)` is called after every run read (for a line on large trees)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    paths = sorted(root.rglob("summary.json"))
    records = []
    for done, path in enumerate(paths, start=1):
        record = read_run(path.parent)
        if record is not None:
            records.append(record)
        if progress is not None:
            progress(done, len(paths))
    return records


def read_run(run_dir: str | Path) -> dict | None:
    """A run's summary with its `run_dir` and flattened `settings`; None without a readable summary."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    summary["run_dir"] = str(run_dir)
    summary["settings"] = _settings(run_dir, summary)
    return summary


def _settings(run_dir: Path, summary: dict) -> dict:
    """The run's resolved config as dotted keys; without config.yaml, what the summary says of it."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        config = None
    if not isinstance(config, dict):
        settings: dict = {}
        for name, source in SOURCES.items():
            if name in summary:
                settings.setdefault(source[0], summary[name])
        return settings
    return dict(_flatten(config))


def _flatten(node, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], json.dumps(node) if isinstance(node, list) else node


@dataclass
class Cell:
    values: list[float]
    seeds: list = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)  # the summaries behind the values

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
    cells: dict  # (row label, col) -> Cell
    shared: dict = field(default_factory=dict)  # headline settings every run has in common
    warnings: list[str] = field(default_factory=list)

    def cell(self, row, col) -> Cell | None:
        return self.cells.get((row, col))


def pivot(runs: list[dict], value_key: str, row_key: str = "method", col_key: str = "target_sparsity",
          convert=None) -> Pivot:
    """Completed runs grouped by (row, col) and by every setting in which they differ; each cell
    holds one value per seed (`convert`ed, e.g. accuracy to error %). A seed that appears twice in a
    cell is reported in `warnings`."""
    used = [run for run in runs if run.get("status") == "completed" and _lookup(run, value_key) is not None]
    ignored = {*SOURCES.get(row_key, ()), *SOURCES.get(col_key, ()), "seed"}
    settings = [{k: v for k, v in run.get("settings", {}).items() if _matters(k) and k not in ignored} for run in used]
    owned = OWNED.get(row_key, ())
    differing = _differing(settings, exclude=owned)
    by_row: dict = {}
    for run, setting in zip(used, settings):
        by_row.setdefault(run.get(row_key), []).append(setting)
    row_keys = {row: _shown(sorted(differing | _differing(same_row, within=owned)), settings)
                for row, same_row in by_row.items()}
    cells: dict = {}
    for run, setting in zip(used, settings):
        row = run.get(row_key)
        label = _label(row, {k: setting.get(k) for k in row_keys[row]})
        cell = cells.setdefault((label, _round(run.get(col_key))), Cell([]))
        value = float(_lookup(run, value_key))
        cell.values.append(convert(value) if convert else value)
        cell.seeds.append(run.get("seed"))
        cell.runs.append(run)
    warnings = [
        f"{label} at {col_key}={col}: seed {seed} appears {count} times; those runs are averaged as if independent"
        for (label, col), cell in cells.items() for seed, count in Counter(cell.seeds).items() if count > 1
    ]
    rows = sorted({r for r, _ in cells}, key=str)
    cols = sorted({c for _, c in cells}, key=lambda c: (c is None, c))
    all_settings = [run.get("settings", {}) for run in used]
    shared = {k: all_settings[0].get(k) for k in HEADLINE if all_settings and len({str(s.get(k)) for s in all_settings}) == 1
              and all_settings[0].get(k) is not None}
    return Pivot(row_key, col_key, value_key, rows, cols, cells, shared, warnings)


def _matters(key: str) -> bool:
    return not key.startswith(COSMETIC_PREFIXES) and key not in COSMETIC_KEYS


def _differing(settings: list[dict], within: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> set[str]:
    """Keys (only those under the prefixes `within`, if given; none under `exclude`) whose value is not
    the same in every run; a key some runs lack counts as differing."""
    keys = {k for s in settings for k in s if not k.startswith(exclude)}
    if within is not None:
        keys = {k for k in keys if k.startswith(within)}
    return {k for k in keys if len({json.dumps(s.get(k), default=str) for s in settings}) > 1}


def _shown(keys: list[str], settings: list[dict]) -> list[str]:
    """The differing keys worth naming in a row label. A key that only some runs have, with one value
    where present, is left out when its group's option differs too: trainer.cache exists only under
    trainer=neuroflux, so trainer.name already tells those rows apart."""
    names = {k for k in keys if k.endswith(".name")}

    def implied(key: str) -> bool:
        present = [json.dumps(s[key], default=str) for s in settings if key in s]
        return f"{key.rpartition('.')[0]}.name" in names and len(present) < len(settings) and len(set(present)) <= 1

    return [k for k in keys if k in names or not implied(k)]


def _label(row, distinguishing: dict) -> str:
    if not distinguishing:
        return str(row)
    return f"{row} ({', '.join(f'{k}={v}' for k, v in distinguishing.items())})"


def numeric_keys(runs: list[dict]) -> list[str]:
    """Every summary key, dotted for nested ones (timings_s.find_mask), that holds a number in some run."""
    found = set()

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                found.add(f"{prefix}{key}")

    for run in runs:
        walk({k: v for k, v in run.items() if k != "settings"}, "")
    return sorted(found)


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
    return f"{text} (n={len(cell.values)})"


def describe_shared(table: Pivot) -> str:
    """One line on what every run of the table has in common."""
    if not table.shared:
        return ""
    return "All runs: " + ", ".join(f"{k}={v}" for k, v in table.shared.items()) + "; n = seeds per cell.\n\n"


def to_markdown(table: Pivot, scale: float = 1.0, digits: int = 2) -> str:
    header = [f"{table.row_key} \\ {table.col_key}", *[str(c) for c in table.cols]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        cells = [format_cell(table.cell(row, col), scale, digits) for col in table.cols]
        lines.append("| " + " | ".join([str(row), *cells]) + " |")
    return describe_shared(table) + "\n".join(lines) + "\n"


def to_latex(table: Pivot, scale: float = 1.0, digits: int = 2) -> str:
    lines = [
        "\\begin{tabular}{l" + "r" * len(table.cols) + "}",
        "\\toprule",
        " & ".join([table.row_key, *[str(c) for c in table.cols]]) + " \\\\",
        "\\midrule",
    ]
    for row in table.rows:
        cells = [format_cell(table.cell(row, col), scale, digits).replace("±", "$\\pm$") for col in table.cols]
        lines.append(" & ".join([_latex_escape(str(row)), *cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def to_csv(table: Pivot) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([table.row_key, table.col_key, f"{table.value_key}_mean", f"{table.value_key}_std", "n"])
    for (row, col), cell in sorted(table.cells.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))):
        writer.writerow([row, col, cell.mean, cell.std, len(cell.values)])
    return out.getvalue()
