"""Comparison tables from run directories: grouping by every differing setting, mean +- std over seeds
with n, duplicate seeds, formats, and the sweep's comparison.md."""

import json
from pathlib import Path

import pytest
import yaml

from drive_runner.report.tables import collect_runs, pivot, to_csv, to_latex, to_markdown


def write_run(root: Path, name: str, config: dict | None = None, **summary) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "summary.json").write_text(json.dumps({"status": "completed", **summary}))
    if config is not None:
        (root / name / "config.yaml").write_text(yaml.safe_dump(config))


def config(method="snip", model="lenet300", epochs=30, scope="global", seed=0, **method_knobs) -> dict:
    return {"method": {"name": method, **method_knobs}, "model": {"name": model}, "dataset": {"name": "digits"},
            "trainer": {"name": "backprop", "epochs": epochs, "eval_batch_size": 512}, "prune": {"scope": scope},
            "sparsity": 0.9, "seed": seed, "logger": {"mode": "offline"}, "hardware": {"num_workers": 2}}


@pytest.fixture
def runs(tmp_path: Path) -> list[dict]:
    write_run(tmp_path, "a", method="snip", seed=0, target_sparsity=0.9, test_acc=0.90, timings_s={"find_mask": 1.0})
    write_run(tmp_path, "b", method="snip", seed=1, target_sparsity=0.9, test_acc=0.92, timings_s={"find_mask": 3.0})
    write_run(tmp_path, "c", method="random", seed=0, target_sparsity=0.5, test_acc=0.80, timings_s={"find_mask": 0.1})
    write_run(tmp_path, "d", method="random", seed=0, target_sparsity=0.9, test_acc=0.10, status="failed")
    return collect_runs(tmp_path)


def test_pivot_groups_by_method_and_sparsity_over_completed_runs(runs):
    table = pivot(runs, "test_acc")
    assert table.rows == ["random", "snip"] and table.cols == [0.5, 0.9]
    cell = table.cell("snip", 0.9)
    assert cell.mean == pytest.approx(0.91) and cell.std == pytest.approx(0.0141421, rel=1e-4)
    assert table.cell("random", 0.9) is None  # the failed run is not averaged in
    assert not table.warnings


def test_nested_values_and_formats_print_n_per_cell(runs):
    times = pivot(runs, "timings_s.find_mask")
    assert times.cell("snip", 0.9).mean == pytest.approx(2.0)
    accuracy = pivot(runs, "test_acc")
    markdown = to_markdown(accuracy, scale=100)
    assert "| snip | - | 91.00 ± 1.41 (n=2) |" in markdown
    assert "| random | 80.00 (n=1) | - |" in markdown
    assert "91.00 $\\pm$ 1.41 (n=2)" in to_latex(accuracy, scale=100)
    assert "snip,0.9,0.91" in to_csv(accuracy) and to_csv(accuracy).strip().endswith(",2")


def test_runs_that_differ_in_any_setting_are_never_averaged(tmp_path: Path):
    write_run(tmp_path, "g", config(scope="global"), method="snip", seed=0, target_sparsity=0.9, test_acc=0.9)
    write_run(tmp_path, "l", config(scope="layerwise"), method="snip", seed=0, target_sparsity=0.9, test_acc=0.8)
    write_run(tmp_path, "e", config(epochs=4), method="snip", seed=0, target_sparsity=0.9, test_acc=0.7)
    write_run(tmp_path, "r", config(model="resnet20"), method="snip", seed=0, target_sparsity=0.9, test_acc=0.6)
    table = pivot(collect_runs(tmp_path), "test_acc")
    assert len(table.rows) == 4 and all(len(cell.values) == 1 for cell in table.cells.values())
    labels = " ".join(table.rows)
    assert "prune.scope=layerwise" in labels and "trainer.epochs=4" in labels and "model.name=resnet20" in labels


def test_method_knobs_split_a_method_but_cosmetic_keys_and_seeds_do_not(tmp_path: Path):
    for seed in (0, 1):
        settings = config(method="drive", seed=seed, alpha=1.0)
        settings["logger"]["mode"] = "online" if seed else "offline"  # cosmetic
        write_run(tmp_path, f"d{seed}", settings, method="drive", seed=seed, target_sparsity=0.9, test_acc=0.9)
    write_run(tmp_path, "a0", config(method="drive", alpha=0.0), method="drive", seed=0, target_sparsity=0.9,
              test_acc=0.5)
    write_run(tmp_path, "s0", config(method="snip", num_examples=100), method="snip", seed=0, target_sparsity=0.9,
              test_acc=0.8)
    table = pivot(collect_runs(tmp_path), "test_acc")
    assert table.rows == ["drive (method.alpha=0.0)", "drive (method.alpha=1.0)", "snip"]
    assert table.cell("drive (method.alpha=1.0)", 0.9).values == [0.9, 0.9]
    assert table.shared["model.name"] == "lenet300" and table.shared["trainer.epochs"] == 30


def test_a_seed_twice_in_a_cell_is_warned_about(tmp_path: Path, capsys):
    from drive_runner.cli.report import main

    for name in ("x", "y"):
        write_run(tmp_path, name, config(), method="snip", seed=0, target_sparsity=0.9, test_acc=0.9)
    table = pivot(collect_runs(tmp_path), "test_acc")
    assert len(table.warnings) == 1 and "seed 0 appears 2 times" in table.warnings[0]
    assert main([str(tmp_path), "--no-figures"]) == 0
    assert "seed 0 appears 2 times" in capsys.readouterr().err


def test_report_command_prints_latex_and_refuses_empty_or_missing_directories(runs, tmp_path, capsys):
    from drive_runner.cli.report import main

    root = runs[0]["run_dir"].rsplit("/", 1)[0]
    assert main([root, "--format", "latex"]) == 0
    assert "91.00 $\\pm$ 1.41 (n=2)" in capsys.readouterr().out
    assert main([root, "--value", "timings_s.find_mask", "--format", "markdown"]) == 0
    assert "| snip | - | 2.00 ± 1.41 (n=2) |" in capsys.readouterr().out
    assert {p.name for p in (Path(root) / "report").iterdir()} >= {"report.md", "report.tex", "report.csv"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 1
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_sweep_report_writes_comparison_files_from_the_job_directories(tmp_path: Path):
    from drive_runner.report.sweep import collect, write_and_print

    for number, (method, seed, acc) in enumerate([("snip", 0, 0.9), ("snip", 1, 0.8), ("random", 0, 0.5)]):
        job = tmp_path / str(number)
        write_run(tmp_path, str(number), config(method=method, seed=seed), method=method, seed=seed,
                  target_sparsity=0.9, test_acc=acc, timings_s={"find_mask": 1.0, "total": 2.0})
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"method={method}", f"seed={seed}"]))
    outcome = collect(tmp_path)
    write_and_print(outcome)
    comparison = (tmp_path / "comparison.md").read_text()
    assert "| snip | 85.00 ± 7.07 (n=2) |" in comparison and "| random | 50.00 (n=1) |" in comparison
    assert "Find-mask time" in comparison
    assert json.loads((tmp_path / "sweep_summary.json").read_text())["failed"] == 0
    assert "random,0.9,0.5,0.0,1" in (tmp_path / "comparison.csv").read_text()


def test_keys_of_another_trainer_are_implied_by_its_name_not_listed(tmp_path: Path):
    backprop = config(method="dense")
    neuroflux = config(method="dense")
    neuroflux["trainer"].update({"name": "neuroflux", "cache": "auto"})
    write_run(tmp_path, "b", backprop, method="dense", seed=0, target_sparsity=0.0, test_acc=0.9)
    write_run(tmp_path, "n", neuroflux, method="dense", seed=0, target_sparsity=0.0, test_acc=0.8)
    assert pivot(collect_runs(tmp_path), "test_acc").rows == ["dense (trainer.name=backprop)",
                                                               "dense (trainer.name=neuroflux)"]


def test_drive_report_puts_the_papers_numbers_beside_ours_and_draws_them(tmp_path: Path, capsys):
    from drive_runner.cli.report import main

    layers = [{"name": "fc1.weight", "numel": 235200, "density": 0.04}, {"name": "fc2.weight", "numel": 30000,
                                                                         "density": 0.1}]
    for seed, acc in ((0, 0.9810), (1, 0.9790)):
        settings = config(method="snip", seed=seed)
        settings["table"] = {"name": "snip_mnist", "reference": "snip_mnist"}
        write_run(tmp_path, f"s{seed}", settings, method="snip", model="lenet300", dataset="mnist", seed=seed,
                  target_sparsity=0.95, test_acc=acc, layers=layers, timings_s={"find_mask": 0.5})
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Reference: N. Lee, T. Ajanthan, P. H. S. Torr." in out  # found from the runs' table
    assert "| snip | 0.95 | 2.00 ± 0.14 (n=2) | 1.60 | +0.40 |" in out  # test error, ours against the paper's
    assert "| +0.40 | [-0.87, +1.67] | 30 epochs |" in out  # the difference's 95% interval (t, 1 df), the recipe
    written = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.md", "report.tex", "report.csv", "accuracy.png", "accuracy.pdf", "layer_density.png",
            "layer_density.pdf"} <= written
    drawn = json.loads((tmp_path / "report" / "report.json").read_text())["figures"]
    assert "paper: snip" in drawn["accuracy"] and "snip" in drawn["accuracy"]
    assert "\\toprule" in (tmp_path / "report" / "report.tex").read_text()


def test_report_states_the_wall_clock_of_runs_that_overlapped_and_their_summed_run_time(tmp_path: Path):
    from drive_runner.report.build import build_report

    for name, start, seconds in (("a", 1000.0, 600.0), ("b", 1000.0, 900.0), ("c", 1600.0, 300.0)):
        write_run(tmp_path, name, method="snip", target_sparsity=0.9, test_acc=0.9, timings_s={"total": seconds})
        (tmp_path / name / "metrics.jsonl").write_text(
            json.dumps({"time": start, "event": "phase_start"}) + "\n"
            + json.dumps({"time": start + seconds, "event": "evaluation"}) + "\n")
    report = build_report(collect_runs(tmp_path), None)
    # a and b ran side by side, c after a: 1000 s -> 1900 s is 15 min; 600 + 900 + 300 s is 30 min.
    assert "Wall-clock 15.0 min from the first run's first record to the last run's last; 30.0 min of run time" \
        in report.markdown


def test_report_refusals_write_nothing_and_the_flags_explain_themselves(tmp_path, capsys):
    """Issue 21, item 6: an unknown --value is refused with what exists (exit 2); a folder without a completed
    run writes no report/; --version answers; --digits has help text."""
    from drive_runner.cli.report import main

    write_run(tmp_path / "runs", "a", method="snip", seed=0, target_sparsity=0.9, test_acc=0.9, timings_s={"total": 2.0})
    assert main([str(tmp_path / "runs"), "--value", "foo"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("drive-report: error: --value: 'foo' is neither a quantity (test_acc_percent, ")
    assert "test_acc" in line and "timings_s.total" in line and not (tmp_path / "runs" / "report").exists()
    write_run(tmp_path / "failed", "b", method="snip", seed=0, target_sparsity=0.9, test_acc=0.9, status="failed")
    assert main([str(tmp_path / "failed")]) == 1
    assert "no completed run" in capsys.readouterr().err and not (tmp_path / "failed" / "report").exists()
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out.startswith("drive-report (drive-runner ")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "decimal places" in capsys.readouterr().out


def test_figures_label_log_axes_plainly_keep_the_legend_off_the_data_and_style_variants(tmp_path: Path,
                                                                                         monkeypatch):
    """Issue 21, item 11: ticks 2, 5, 10 (no 2x10^0), one legend beside the panels at a readable size, titles
    in words, and two variants of one method in its colour told apart by line style and marker."""
    from drive_runner.methods import method_colour
    from drive_runner.report import figures

    layers = [{"name": "fc1.weight", "numel": 100, "density": 0.05}, {"name": "fc2.weight", "numel": 10,
                                                                       "density": 0.3}]
    for epochs, method in ((30, "snip"), (4, "snip"), (30, "random")):
        for sparsity, acc in ((0.5, 0.97), (0.9, 0.95), (0.99, 0.7)):
            write_run(tmp_path, f"{method}{epochs}-{sparsity}", config(method=method, epochs=epochs), method=method,
                      model="lenet300", dataset="digits", seed=0, target_sparsity=sparsity, test_acc=acc,
                      layers=layers)
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out_dir, name: drawn.setdefault(name, fig) and [name])
    runs = collect_runs(tmp_path)
    figures.accuracy_figure([runs], tmp_path, None, "method", "target_sparsity", "test_error_percent")
    figures.layer_density_figure([runs], tmp_path, "method", "target_sparsity")
    for fig in drawn.values():
        fig.canvas.draw()
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_legend() for ax in axes] == [None] * len(axes) and len(fig.legends) == 1
        legend = fig.legends[0]
        assert min(text.get_fontsize() for text in legend.get_texts()) >= 8
        legend_box = legend.get_window_extent()
        assert all(legend_box.x0 >= ax.get_window_extent().x1 for ax in axes)  # beside the panels, not on them
        for ax in axes:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_scale() != "log":
                    continue
                texts = [label.get_text() for label in axis.get_ticklabels(which="both") if label.get_text()]
                assert texts and all(float(text) > 0 for text in texts), texts  # plain numbers, no 10^x
    assert "10" in [label.get_text() for label in drawn["accuracy"].axes[0].get_xticklabels()]
    titles = [ax.get_title() for ax in drawn["layer_density"].axes if ax.get_visible()]
    assert titles == ["lenet300 on digits, 50% sparsity", "lenet300 on digits, 90% sparsity",
                      "lenet300 on digits, 99% sparsity"]
    lines = {bars.get_label(): bars.lines[0] for bars in drawn["accuracy"].axes[0].containers}
    snips = [lines["snip (trainer.epochs=30)"], lines["snip (trainer.epochs=4)"]]
    assert snips[0].get_color() == snips[1].get_color() == method_colour("snip")
    assert (snips[0].get_linestyle(), snips[0].get_marker()) != (snips[1].get_linestyle(), snips[1].get_marker())
    assert lines["random (trainer.epochs=30)"].get_color() == method_colour("random")


def test_imp_levels_report_the_early_stopping_point_of_tickets_and_controls(tmp_path: Path):
    """LTH Fig. 4: with a validation split, each level's early-stop iteration and test accuracy there."""
    from drive_runner.report.build import build_report

    for seed in (0, 1):
        write_run(tmp_path, f"imp{seed}", config(method="imp", seed=seed), method="imp", seed=seed,
                  target_sparsity=0.36, achieved_sparsity=0.36, test_acc=0.97, early_stop_step=900 + seed * 100,
                  early_stop_test_acc=0.975)
        rows = [{"event": "imp_level", "level": 0, "density": 1.0, "test_acc": 0.96, "early_stop_step": 2000,
                 "early_stop_test_acc": 0.965},
                {"event": "imp_control", "level": 1, "control": "reinit", "density": 0.64, "test_acc": 0.95,
                 "early_stop_step": 3000 + seed * 200, "early_stop_test_acc": 0.955}]
        (tmp_path / f"imp{seed}" / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = build_report(collect_runs(tmp_path), tmp_path / "report")
    markdown = report.markdown
    assert "### IMP level by level: test accuracy (%)" in markdown
    assert "### IMP level by level: early-stop iteration" in markdown
    assert "| 64.00 | 950 ± 71 (n=2) | 3100 ± 141 (n=2) |" in markdown  # ticket (the final run), reinit control
    assert "### IMP level by level: test accuracy at early stop (%)" in markdown
    assert (tmp_path / "report" / "imp_levels.png").exists()
