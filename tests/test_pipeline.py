"""The four phases driven from Python: budgets, invariants, failures, reproducibility."""

import json
from pathlib import Path

import pytest
import torch

from drive_runner.errors import TrainingDiverged
from drive_runner.pipeline import run
from tests.conftest import quick_cfg


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", [["method=random"], ["method=drive", "method.warmup_epochs=0", "method.iterations=5"]])
def test_zero_epochs_prunes_then_evaluates(tmp_path: Path, method):
    summary = run(quick_cfg("trainer.epochs=0", *method), tmp_path)
    assert summary["status"] == "completed"
    assert summary["achieved_sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert not any(e["event"] == "epoch" for e in events(tmp_path))
    assert 0.0 <= summary["test_acc"] <= 1.0


def test_warmup_is_part_of_the_epoch_budget_and_prunes_trained_weights(tmp_path: Path):
    summary = run(quick_cfg("trainer.epochs=3", "method.warmup_epochs=2"), tmp_path)
    phases = [e["phase"] for e in events(tmp_path) if e["event"] == "epoch"]
    assert phases == ["warmup", "warmup", "train"]
    assert [e["epoch"] for e in events(tmp_path) if e["event"] == "epoch"] == [1, 2, 3]
    assert summary["warmup_epochs"] == 2 and summary["timings_s"]["warmup"] > 0


def test_a_warmup_on_top_of_the_budget_trains_the_recipes_epochs_after_pruning(tmp_path: Path):
    """Issue 22, item 4: trainer.warmup_in_budget=false gives DRIVE as many epochs after pruning as a method that
    prunes at initialisation, the LR drops moved by the warm-up; a cosine schedule (no drops) is refused."""
    summary = run(quick_cfg("method=drive", "method.iterations=5", "method.warmup_epochs=2", "trainer.epochs=3",
                            "trainer.warmup_in_budget=false", "trainer.lr_schedule=multistep",
                            "trainer.lr_milestones=[1]"), tmp_path)
    epochs = [e for e in events(tmp_path) if e["event"] == "epoch"]
    assert [e["phase"] for e in epochs] == ["warmup", "warmup", "train", "train", "train"]
    assert [e["lr"] for e in epochs] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01])
    assert summary["epochs"] == 5 and summary["warmup_epochs"] == 2
    from drive_runner.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.warmup_in_budget"):
        run(quick_cfg("method=drive", "trainer.warmup_in_budget=false", "trainer.lr_schedule=cosine"), tmp_path / "c")


def test_evaluations_between_epochs_find_the_early_stopping_point_on_the_held_out_split(tmp_path: Path):
    """Issue 22, item 3: with dataset.validation_size and trainer.eval_every_steps a run evaluates every N steps;
    the evaluation with the lowest validation loss is the early-stopping point (its step and test accuracy), per
    phase, IMP's levels and controls included."""
    summary = run(quick_cfg("dataset.validation_size=300", "trainer.eval_every_steps=4", "trainer.epochs=2",
                            "method=imp", "method.control=reinit", "sparsity=0.36"), tmp_path)
    between = [e for e in events(tmp_path) if e["event"] == "evaluation_step"]
    assert {e["step"] % 4 for e in between} == {0} and {"val_loss", "val_top1", "test_top1"} <= set(between[0])
    epochs = [e for e in events(tmp_path) if e["event"] == "epoch" and e["phase"] == "train"]
    steps_per_epoch = epochs[-1]["step"] // 2  # the final ticket trains from step 0, rewound
    assert steps_per_epoch == -(-(1437 - 300) // summary["memory"]["batch_size"])
    final = [e for e in between if e["phase"] == "train"]
    assert len(final) == 2 * steps_per_epoch // 4
    best = min(final + epochs, key=lambda e: (e["val_loss"], e["step"]))
    assert (summary["early_stop_step"], summary["early_stop_test_acc"]) == (best["step"], best["test_top1"])
    assert summary["val_acc"] == epochs[-1]["val_top1"]
    levels = [e for e in events(tmp_path) if e["event"] in ("imp_level", "imp_control")]
    assert len(levels) == 2 + 2 and all(0 < e["early_stop_step"] <= 2 * steps_per_epoch for e in levels)


def test_dense_method_keeps_every_weight(tmp_path: Path):
    summary = run(quick_cfg("method=dense"), tmp_path)
    assert summary["target_sparsity"] == 0.0 and summary["achieved_sparsity"] == 0.0
    assert summary["flops_sparse"] == summary["flops_dense"]


def test_layerwise_random_variant_prunes_every_layer_exactly(tmp_path: Path):
    summary = run(quick_cfg("method=random", "method.variant=layerwise", "sparsity=0.75"), tmp_path)
    for layer in summary["layers"]:
        assert layer["survivors"] == round(layer["numel"] * 0.25)


def test_global_random_layer_densities_are_binomial(tmp_path: Path):
    summary = run(quick_cfg("method=random", "sparsity=0.9", "trainer.epochs=0"), tmp_path)
    for layer in summary["layers"]:
        sigma = (layer["numel"] * 0.1 * 0.9) ** 0.5
        assert abs(layer["survivors"] - layer["numel"] * 0.1) <= 5 * sigma


def test_masks_and_checkpoint_reload_with_weights_only(tmp_path: Path):
    from drive_runner.models import build_model
    from drive_runner.pruning.masks import MaskEngine

    run(quick_cfg("trainer.epochs=1"), tmp_path)
    # The plain three-line load of the README.
    checkpoint = torch.load(tmp_path / "checkpoints" / "final.pt", weights_only=True)
    model = build_model(checkpoint["model"], checkpoint["input_shape"], checkpoint["num_classes"])
    model.load_state_dict(checkpoint["state_dict"])
    engine = MaskEngine(model)
    engine.load_masks(checkpoint["masks"])
    engine.verify(expected_survivors=round(engine.total() * 0.1))
    masks = torch.load(tmp_path / "checkpoints" / "masks.pt", weights_only=True)
    assert all(torch.equal(masks[name], mask) for name, mask in checkpoint["masks"].items())


def test_a_failed_run_is_marked_failed_and_not_completed(tmp_path: Path):
    with pytest.raises(TrainingDiverged):
        run(quick_cfg("method=dense", "trainer.lr=1e12", "trainer.epochs=2"), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "diverged" in summary["error"]
    assert not (tmp_path / "checkpoints" / "final.pt").exists()


def test_same_seed_same_masks_and_metrics(tmp_path: Path):
    first = run(quick_cfg("method=random", "trainer.epochs=2", "seed=3"), tmp_path / "a")
    second = run(quick_cfg("method=random", "trainer.epochs=2", "seed=3"), tmp_path / "b")
    other = run(quick_cfg("method=random", "trainer.epochs=2", "seed=4"), tmp_path / "c")
    masks = [torch.load(tmp_path / d / "checkpoints" / "masks.pt", weights_only=True) for d in "abc"]
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    assert not all(torch.equal(masks[0][k], masks[2][k]) for k in masks[0])
    epochs = [[e for e in events(tmp_path / d) if e["event"] == "epoch"] for d in "ab"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "epoch_time_s")} for r in rows]  # noqa: E731
    assert strip(epochs[0]) == strip(epochs[1])
    assert (first["test_acc"], first["test_loss"]) == (second["test_acc"], second["test_loss"])
    assert first["test_loss"] != other["test_loss"]


def test_run_directory_files(tmp_path: Path):
    run(quick_cfg(), tmp_path)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/final.pt", "checkpoints/masks.pt"):
        assert (tmp_path / name).is_file(), name
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"
    kinds = {e["event"] for e in events(tmp_path)}
    assert {"phase_start", "prune_step", "pruned", "epoch", "evaluation"} <= kinds


def test_honest_names_and_warnings(tmp_path: Path, capsys):
    """Issue 21, item 9: jobs without a sparsity target have no -s<sparsity> in their names; a batch larger than
    the training set and a warm-up that uses every epoch are each warned about in one line."""
    from omegaconf import OmegaConf

    from drive_runner.tracking.console import Console
    from drive_runner.tracking.naming import job_name

    def name(*overrides):
        return job_name(OmegaConf.to_container(quick_cfg(*overrides), resolve=True, enum_to_str=True))

    assert "-s0.9-" in name("method=magnitude")
    for overrides in (["method=dense"], ["method=prunetrain"], ["trainer=neuroflux"]):
        assert "-s0.9-" not in name(*overrides) and "-seed0-" in name(*overrides), overrides
    run(quick_cfg("trainer.batch_size=4096", "trainer.epochs=2", "method=drive", "method.warmup_epochs=2",
                  "method.iterations=2"), tmp_path, console=Console(interactive=False))
    lines = capsys.readouterr().err.splitlines()  # warnings go to stderr
    assert any("trainer.batch_size=4096 is larger than the 1,437 training images of digits" in line for line in lines)
    assert any("method.warmup_epochs=2 is the whole budget trainer.epochs=2" in line for line in lines)
