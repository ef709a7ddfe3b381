"""Comparison tables from run summaries: grouping, mean +- std over seeds, formats."""

import json
from pathlib import Path

import pytest

from drive_runner.report.tables import collect_runs, pivot, to_csv, to_latex, to_markdown


def write_run(root: Path, name: str, **summary) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "summary.json").write_text(json.dumps({"status": "completed", **summary}))


@pytest.fixture
def runs(tmp_path: Path) -> list[dict]:
    write_run(tmp_path, "a", method="snip", target_sparsity=0.9, test_acc=0.90, timings_s={"find_mask": 1.0})
    write_run(tmp_path, "b", method="snip", target_sparsity=0.9, test_acc=0.92, timings_s={"find_mask": 3.0})
    write_run(tmp_path, "c", method="random", target_sparsity=0.5, test_acc=0.80, timings_s={"find_mask": 0.1})
    write_run(tmp_path, "d", method="random", target_sparsity=0.9, test_acc=0.10, status="failed")
    return collect_runs(tmp_path)


def test_pivot_groups_by_method_and_sparsity_over_completed_runs(runs):
    table = pivot(runs, "test_acc")
    assert table.rows == ["random", "snip"] and table.cols == [0.5, 0.9]
    cell = table.cell("snip", 0.9)
    assert cell.mean == pytest.approx(0.91) and cell.std == pytest.approx(0.0141421, rel=1e-4)
    assert table.cell("random", 0.9) is None  # the failed run is not averaged in


def test_nested_values_and_formats(runs):
    times = pivot(runs, "timings_s.find_mask")
    assert times.cell("snip", 0.9).mean == pytest.approx(2.0)
    accuracy = pivot(runs, "test_acc")
    markdown = to_markdown(accuracy, scale=100)
    assert "| snip | - | 91.00 ± 1.41 |" in markdown
    assert "91.00 $\\pm$ 1.41" in to_latex(accuracy, scale=100)
    assert "snip,0.9,0.91" in to_csv(accuracy)


def test_report_command_prints_latex_and_refuses_empty_directories(runs, tmp_path, capsys):
    from drive_runner.report.__main__ import main

    root = runs[0]["run_dir"].rsplit("/", 1)[0]
    assert main([root, "--format", "latex"]) == 0
    assert "91.00 $\\pm$ 1.41" in capsys.readouterr().out
    assert main([root, "--value", "timings_s.find_mask", "--format", "markdown"]) == 0
    assert "| snip | - | 2.00 ± 1.41 |" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 1
