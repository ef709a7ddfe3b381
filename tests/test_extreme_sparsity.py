"""Pruning at extreme sparsity stays numerically sound and reports collapse honestly."""

from pathlib import Path

import pytest

from drive_runner.pipeline import run
from tests.conftest import make_cfg, read_json, run_cli


def synthetic_vgg(method: str, *overrides: str):
    return make_cfg("dataset=synthetic", "dataset.num_classes=100", "dataset.image_size=16", "dataset.num_test=32",
                    "model=vgg11", f"method={method}", "sparsity=0.99999", "trainer.epochs=0", "logger=none",
                    *overrides)


def test_synflow_keeps_every_layer_alive_where_random_collapses_and_says_so(tmp_path: Path, capsys):
    synflow = run(synthetic_vgg("synflow", "method.iterations=20"), tmp_path / "synflow")
    assert synflow["collapsed_layers"] == [] and not synflow["disconnected"]
    assert synflow["min_layer_survivors"] >= 1
    assert synflow["achieved_sparsity"] == pytest.approx(0.99999, abs=1e-6)
    assert "LAYER COLLAPSE" not in capsys.readouterr().err
    randomly = run(synthetic_vgg("random"), tmp_path / "random")
    assert randomly["collapsed_layers"] and randomly["disconnected"]
    assert randomly["status"] == "completed" and 0 <= randomly["test_acc"] <= 1  # still evaluated
    err = capsys.readouterr().err
    collapse = [line for line in err.splitlines() if "LAYER COLLAPSE" in line]
    assert len(collapse) == 1 and all(name in collapse[0] for name in randomly["collapsed_layers"])
    assert "DISCONNECTED" in err


@pytest.mark.slow
@pytest.mark.parametrize("method, collapses", [("synflow", False), ("random", True)])
def test_vgg16_acceptance_at_five_nines(tmp_path: Path, method, collapses):
    result = run_cli("dataset=synthetic", "dataset.num_classes=100", "model=vgg16", f"method={method}",
                     "sparsity=0.99999", "trainer.epochs=0", "hydra.run.dir=D", "logger=none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "D" / "summary.json")
    assert bool(summary["collapsed_layers"]) == collapses
    assert ("LAYER COLLAPSE" in result.stderr) == collapses


@pytest.mark.slow
def test_method_sweep_acceptance(tmp_path: Path):
    methods = "random,magnitude,snip,grasp,synflow,imp,drive"
    result = run_cli("-m", "dataset=digits", "model=lenet300", f"method={methods}", "sparsity=0.9,0.98",
                     "logger=none", "hydra.sweep.dir=S", cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, result.stderr
    summaries = [read_json(p) for p in (tmp_path / "S").glob("*/summary.json")]
    assert len(summaries) == 14 and all(s["status"] == "completed" for s in summaries)
    comparison = (tmp_path / "S" / "comparison.md").read_text()
    for method in methods.split(","):
        assert f"| {method} |" in comparison
    assert "Find-mask time" in comparison
