"""The report's figures, each saved as PNG and PDF: accuracy against compression per method with error
bars and the paper's curve dashed on the same axes; per-layer density per method (the layer-collapse
picture); PruneTrain's training FLOPs and epoch time; IMP's tickets against their control."""

from __future__ import annotations

import statistics
from pathlib import Path

from drive_runner.methods import method_colour
from drive_runner.report.events import IMP_QUANTITIES, events, imp_curves
from drive_runner.report.tables import pivot
from drive_runner.tables.references import quantity_of

COMPRESSION_AXES = ("target_sparsity", "target_compression")
LEGEND_FONT_SIZE = 9
LEGEND_WIDTH = 2.5  # inches added to each figure for the legend beside its panels


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


def _in_words(column: str, value) -> str:
    """A panel's column value as a reader says it: 90% sparsity, 32x compression."""
    if column == "target_sparsity":
        return f"{100 * value:g}% sparsity"
    if column == "target_compression":
        return f"{10.0 ** value:.3g}x compression"
    return f"{column.replace('_', ' ').replace('.', ' ')} {value}"


def _plain_log_ticks(ax) -> None:
    """Log axes labelled 2, 5, 10, 0.01 rather than 2x10^0: matplotlib still decides which ticks get a label."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, value, pos=None):
            return f"{value:g}" if super().__call__(value, pos) else ""

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(PlainLogFormatter())
            axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def _finish(fig, axes) -> None:
    """Plain log ticks on every panel, and one legend for the figure beside the panels, never over the data."""
    entries: dict = {}
    for ax in axes:
        _plain_log_ticks(ax)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize=LEGEND_FONT_SIZE)


class _Styles:
    """One colour per method in every figure of every report (the method's own, drive_runner.methods); the
    variants of one method (rows with settings: two recipes, two epoch budgets) share it and differ by line
    style and marker. The paper's curves are dashed with crosses, a style no variant takes."""

    LINES = ("-", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
    MARKERS = ("o", "s", "^", "D", "v")

    def __init__(self):
        self.variants: dict[str, list[str]] = {}

    def __call__(self, method: str, label: str) -> dict:
        labels = self.variants.setdefault(str(method), [])
        if label not in labels:
            labels.append(label)
        index = labels.index(label)
        return {"color": method_colour(str(method)), "linestyle": self.LINES[index % len(self.LINES)],
                "marker": self.MARKERS[index % len(self.MARKERS)]}

    @staticmethod
    def paper(method: str) -> dict:
        return {"color": method_colour(str(method)), "linestyle": "--", "marker": "x"}


def _grid(plt, count: int, width: float = 5.0, height: float = 3.8):
    columns = min(count, 2)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns + LEGEND_WIDTH, height * rows), squeeze=False,
                             layout="constrained")
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    return fig, list(axes.flat)[:count]


def accuracy_figure(panels: list[list[dict]], out_dir: Path, ref, rows: str, columns: str, quantity: str):
    """Our value against compression, one line per row with error bars, the paper's dashed beside it."""
    if columns not in COMPRESSION_AXES or not panels:
        return [], []
    measure = quantity_of(quantity)
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels))
    labels, styles = [], _Styles()
    for ax, runs in zip(axes, panels):
        table = pivot(runs, measure.summary_key, rows, columns, convert=measure.convert)
        for row in table.rows:  # runs without a sparsity target (PruneTrain) have no place on this axis
            points = [(c, table.cell(row, c)) for c in table.cols if c is not None and table.cell(row, c) is not None]
            if not points:
                continue
            method = points[0][1].runs[0].get("method")
            ax.errorbar([_ratio(columns, c) for c, _ in points], [cell.mean for _, cell in points],
                        yerr=[cell.std for _, cell in points], capsize=3, label=str(row), **styles(method, str(row)))
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
                ax.plot(*zip(*points), label=f"paper: {method}", **styles.paper(method))
                labels.append(f"paper: {method}")
        ax.set_xscale("log")
        if "error" in quantity:  # errors span decades (1% against a collapsed 30%): log keeps both readable
            ax.set_yscale("log")
        ax.set_xlabel("compression ratio (N / kept)")
        ax.set_ylabel(measure.label)
        ax.set_title(f"{runs[0].get('model')} on {runs[0].get('dataset')}")
    _finish(fig, axes)
    return labels, _save(fig, out_dir, "accuracy")


def layer_density_figure(panels: list[list[dict]], out_dir: Path, rows: str, columns: str):
    """Each prunable tensor's density, one line per row (a method, or a variant of one) and target: where
    layers collapse."""
    charts = []
    for runs in panels:
        for target in sorted({run.get(columns) for run in runs if run.get("layers")} - {None}, key=str):
            group = [run for run in runs if run.get(columns) == target and run.get("target_sparsity")
                     and run.get("layers")]
            if group:
                charts.append((runs[0], target, group))
    if not charts:
        return [], []
    plt = _pyplot()
    fig, axes = _grid(plt, len(charts))
    labels, styles = [], _Styles()
    for ax, (first, target, group) in zip(axes, charts):
        # Tensors by name, in model order: a method that keeps a layer dense (IMP's output layer) has no point there.
        names = list(dict.fromkeys(layer["name"] for run in group for layer in run["layers"]))
        table = pivot(group, columns, rows, columns)  # labels rows as the accuracy figure and the tables do
        for (row, _), cell in sorted(table.cells.items(), key=str):
            densities: dict = {}
            for run in cell.runs:
                for layer in run["layers"]:
                    densities.setdefault(layer["name"], []).append(max(layer["density"], 1e-6))
            xs = [index for index, name in enumerate(names) if name in densities]
            ax.plot(xs, [statistics.fmean(densities[names[index]]) for index in xs], label=str(row),
                    **styles(cell.runs[0].get("method"), str(row)))
            labels.append(str(row))
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), [name.removesuffix(".weight") for name in names],
                      rotation=45 if len(names) > 6 else 0, fontsize=7)
        ax.set_xlabel("prunable tensor (input to output)")
        ax.set_ylabel("density (kept / weights)")
        ax.set_title(f"{first.get('model')} on {first.get('dataset')}, {_in_words(columns, target)}")
    _finish(fig, axes)
    return labels, _save(fig, out_dir, "layer_density")


def prunetrain_figure(runs: list[dict], out_dir: Path):
    """PruneTrain's training FLOPs per sample and epoch time over the run, beside dense runs of its panel."""
    pruned = [run for run in runs if run.get("method") == "prunetrain"]
    if not pruned:
        return [], []
    plt = _pyplot()
    fig, (flops_ax, time_ax) = plt.subplots(1, 2, figsize=(10 + LEGEND_WIDTH, 3.8), layout="constrained")
    labels, styles = [], _Styles()
    for run in pruned + [r for r in runs if r.get("method") == "dense"]:
        epochs = [row for row in events(run) if row.get("event") == "epoch"]
        label = f"{run.get('method')} {run.get('model')}/{run.get('dataset')} seed {run.get('seed')}"
        style = styles(run.get("method"), label)
        if run.get("method") == "prunetrain":
            flops_ax.plot([row["epoch"] for row in epochs], [row["train_flops_per_sample"] / 1e6 for row in epochs],
                          label=label, **style)
        time_ax.plot([row["epoch"] for row in epochs], [row["epoch_time_s"] for row in epochs], label=label, **style)
        labels.append(label)
    flops_ax.set(xlabel="epoch", ylabel="training MFLOPs per sample", title="training FLOPs")
    time_ax.set(xlabel="epoch", ylabel="seconds", title="epoch time")
    _finish(fig, (flops_ax, time_ax))
    return labels, _save(fig, out_dir, "prunetrain")


def imp_figure(runs: list[dict], out_dir: Path):
    """IMP's winning tickets level by level against their control (LTH Fig. 3), and where the runs evaluated
    between epochs, the early-stop iteration and the test accuracy there (LTH Fig. 4)."""
    panels = {quantity: curves for quantity, curves in imp_curves(runs).items() if len(curves) >= 2}
    if "test_acc" not in panels:
        return [], []
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + LEGEND_WIDTH, 3.8), layout="constrained",
                             squeeze=False)
    styles = _Styles()
    for ax, (quantity, curves) in zip(axes[0], panels.items()):
        scale = 1 if quantity == "early_stop_step" else 100
        for name, points in curves.items():
            densities = sorted(points, reverse=True)
            means = [scale * statistics.fmean(points[d]) for d in densities]
            errors = [scale * statistics.stdev(points[d]) if len(points[d]) > 1 else 0.0 for d in densities]
            ax.errorbar([100 * d for d in densities], means, yerr=errors, capsize=3, label=name,
                        **styles("imp", name))
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set(xlabel="weights remaining (%)", ylabel=IMP_QUANTITIES[quantity], title="IMP level by level")
    _finish(fig, list(axes[0]))
    return list(panels["test_acc"]), _save(fig, out_dir, "imp_levels")


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
