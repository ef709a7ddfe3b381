"""The report's figures, each saved as PNG and PDF: accuracy against compression per method with error
bars and the paper's curve dashed on the same axes; per-layer density per method (the layer-collapse
picture); PruneTrain's training FLOPs and epoch time; IMP's tickets against their control."""

from __future__ import annotations

import statistics
from pathlib import Path

from drive_runner.methods import method_colour
from drive_runner.report.events import events, imp_curves
from drive_runner.report.tables import pivot
from drive_runner.tables.references import quantity_of

COMPRESSION_AXES = ("target_sparsity", "target_compression")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _ratio(column: str, value) -> float:
    """The compression ratio N / kept of a column value."""
    return 1.0 / (1.0 - value) if column == "target_sparsity" else 10.0 ** value


def _grid(plt, count: int, width: float = 5.0, height: float = 3.8):
    columns = min(count, 2)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False,
                             layout="constrained")
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    return fig, list(axes.flat)[:count]


def _colour(plt, method: str, colours: dict):
    """One colour per method in every figure of every report: the method's own (drive_runner.methods); a row
    that is more than a method's name (a label with settings) takes the next free one of this report."""
    if " " not in str(method):
        return method_colour(str(method))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return colours.setdefault(method, cycle[len(colours) % len(cycle)])


def accuracy_figure(panels: list[list[dict]], out_dir: Path, ref, rows: str, columns: str, quantity: str):
    """Our value against compression, one line per row with error bars, the paper's dashed beside it."""
    if columns not in COMPRESSION_AXES or not panels:
        return [], []
    measure = quantity_of(quantity)
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels))
    labels, colours = [], {}
    for ax, runs in zip(axes, panels):
        table = pivot(runs, measure.summary_key, rows, columns, convert=measure.convert)
        for row in table.rows:  # runs without a sparsity target (PruneTrain) have no place on this axis
            points = [(c, table.cell(row, c)) for c in table.cols if c is not None and table.cell(row, c) is not None]
            if not points:
                continue
            method = points[0][1].runs[0].get("method")
            ax.errorbar([_ratio(columns, c) for c, _ in points], [cell.mean for _, cell in points],
                        yerr=[cell.std for _, cell in points], marker="o", capsize=3, label=str(row),
                        color=_colour(plt, method, colours))
            labels.append(str(row))
        for comparison in (ref.comparisons if ref else []):
            if comparison.quantity != quantity or comparison.columns != columns:
                continue
            series: dict = {}
            for entry in comparison.entries:
                if all(entry.get(key, runs[0].get(key)) == runs[0].get(key) for key in ("model", "dataset")):
                    series.setdefault(entry["method"], []).append((_ratio(columns, entry[columns]), entry["value"]))
            for method, points in series.items():
                points.sort()
                ax.plot(*zip(*points), linestyle="--", marker="x", color=_colour(plt, method, colours),
                        label=f"paper: {method}")
                labels.append(f"paper: {method}")
        ax.set_xscale("log")
        if "error" in quantity:  # errors span decades (1% against a collapsed 30%): log keeps both readable
            ax.set_yscale("log")
        ax.set_xlabel("compression ratio (N / kept)")
        ax.set_ylabel(measure.label)
        ax.set_title(f"{runs[0].get('model')} on {runs[0].get('dataset')}")
        ax.legend(fontsize=6)
    return labels, _save(fig, out_dir, "accuracy")


def layer_density_figure(panels: list[list[dict]], out_dir: Path, rows: str, columns: str):
    """Each prunable tensor's density, one line per method and target: where layers collapse."""
    charts = []
    for runs in panels:
        for target in sorted({run.get(columns) for run in runs if run.get("layers")}, key=str):
            group = [run for run in runs if run.get(columns) == target and run.get("target_sparsity")]
            if group:
                charts.append((runs[0], target, group))
    if not charts:
        return [], []
    plt = _pyplot()
    fig, axes = _grid(plt, len(charts))
    labels, colours = [], {}
    for ax, (first, target, group) in zip(axes, charts):
        # Tensors by name, in model order: a method that keeps a layer dense (IMP's output layer) has no point there.
        names = list(dict.fromkeys(layer["name"] for run in group for layer in run["layers"]))
        by_row: dict = {}
        for run in group:
            for layer in run["layers"]:
                by_row.setdefault(run.get(rows), {}).setdefault(layer["name"], []).append(max(layer["density"], 1e-6))
        for row, densities in sorted(by_row.items(), key=str):
            xs = [index for index, name in enumerate(names) if name in densities]
            ax.plot(xs, [statistics.fmean(densities[names[index]]) for index in xs], marker=".", label=str(row),
                    color=_colour(plt, str(row), colours))
            labels.append(str(row))
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), [name.removesuffix(".weight") for name in names],
                      rotation=45 if len(names) > 6 else 0, fontsize=7)
        ax.set_xlabel("prunable tensor (input to output)")
        ax.set_ylabel("density (kept / weights)")
        ax.set_title(f"{first.get('model')} on {first.get('dataset')}, {columns} {target}")
        ax.legend(fontsize=6)
    return labels, _save(fig, out_dir, "layer_density")


def prunetrain_figure(runs: list[dict], out_dir: Path):
    """PruneTrain's training FLOPs per sample and epoch time over the run, beside dense runs of its panel."""
    pruned = [run for run in runs if run.get("method") == "prunetrain"]
    if not pruned:
        return [], []
    plt = _pyplot()
    fig, (flops_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = []
    for run in pruned + [r for r in runs if r.get("method") == "dense"]:
        epochs = [row for row in events(run) if row.get("event") == "epoch"]
        label = f"{run.get('method')} {run.get('model')}/{run.get('dataset')} seed {run.get('seed')}"
        if run.get("method") == "prunetrain":
            flops_ax.plot([row["epoch"] for row in epochs], [row["train_flops_per_sample"] / 1e6 for row in epochs],
                          label=label)
        time_ax.plot([row["epoch"] for row in epochs], [row["epoch_time_s"] for row in epochs], label=label)
        labels.append(label)
    flops_ax.set(xlabel="epoch", ylabel="training MFLOPs per sample", title="training FLOPs")
    time_ax.set(xlabel="epoch", ylabel="seconds", title="epoch time")
    for ax in (flops_ax, time_ax):
        ax.legend(fontsize=6)
    return labels, _save(fig, out_dir, "prunetrain")


def imp_figure(runs: list[dict], out_dir: Path):
    """IMP's winning tickets level by level against their control (LTH Fig. 3)."""
    curves = imp_curves(runs)
    if len(curves) < 2:
        return [], []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, points in curves.items():
        densities = sorted(points, reverse=True)
        means = [100 * statistics.fmean(points[d]) for d in densities]
        errors = [100 * statistics.stdev(points[d]) if len(points[d]) > 1 else 0.0 for d in densities]
        ax.errorbar([100 * d for d in densities], means, yerr=errors, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set(xlabel="weights remaining (%)", ylabel="test accuracy (%)", title="IMP level by level")
    ax.legend(fontsize=7)
    return list(curves), _save(fig, out_dir, "imp_levels")


def draw_all(runs: list[dict], out_dir: Path, ref, rows: str, columns: str, quantity: str,
             panels: list[list[dict]]) -> dict:
    """Every figure that applies to these runs: name -> (series drawn, files written)."""
    drawn = {
        "accuracy": accuracy_figure(panels, out_dir, ref, rows, columns, quantity),
        "layer_density": layer_density_figure(panels, out_dir, rows, columns),
        "prunetrain": prunetrain_figure(runs, out_dir),
        "imp_levels": imp_figure(runs, out_dir),
    }
    return {name: result for name, result in drawn.items() if result[1]}
