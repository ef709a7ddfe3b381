"""NeuroFlux: units and heads, blocks within the budget, local learning, the cache, the exit model."""

import json
from pathlib import Path

import pytest
import torch

from drive_runner.checkpoint import load_exit_model
from drive_runner.data import build_dataset
from drive_runner.errors import ConfigError
from drive_runner.memory.cache import ActivationCache
from drive_runner.memory.heads import build_head, filter_candidates, head_spec
from drive_runner.pipeline import run
from drive_runner.train.loop import evaluate
from drive_runner.validation import validate
from tests.conftest import make_cfg

BUDGET_MB = 80


def neuroflux_cfg(*overrides):
    return make_cfg("trainer=neuroflux", "dataset=digits", "dataset.image_size=16", "model=vgg11", "logger=none",
                    f"hardware.memory_budget_mb={BUDGET_MB}", "trainer.epochs_per_block=2", *overrides)


@pytest.fixture(scope="module")
def neuroflux_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("neuroflux")
    return run(neuroflux_cfg("trainer.cache_precision=fp32"), run_dir), run_dir


def test_every_block_fits_the_budget_and_the_model_predicts_it(neuroflux_run):
    summary, _ = neuroflux_run
    blocks = summary["neuroflux"]["blocks"]
    assert len(blocks) >= 2
    assert [u for block in blocks for u in block["units"]] == list(range(8))
    for block in blocks:
        assert block["measured_peak_mb"] <= BUDGET_MB
        # Each resident tensor counted once in both; a tensor counted twice would be a gap of 10% or more.
        assert block["measured_peak_mb"] == pytest.approx(block["modelled_peak_mb"], rel=0.02)
        assert block["batch_size"] & (block["batch_size"] - 1) == 0


def test_the_chosen_exit_is_the_shallowest_within_a_point_and_reloads_exactly(neuroflux_run):
    summary, run_dir = neuroflux_run
    report = summary["neuroflux"]
    exits = report["exits"]
    best = max(e["val_acc"] for e in exits)
    chosen = report["chosen_exit"]
    assert exits[chosen]["val_acc"] >= best - 0.01
    assert all(e["val_acc"] < best - 0.01 for e in exits[:chosen])
    assert summary["params_total"] == exits[chosen]["params"] == report["exit_params"]
    assert [e["params"] for e in exits[:-1]] == sorted(e["params"] for e in exits[:-1])

    model = load_exit_model(run_dir / "checkpoints" / "exit.pt")
    data = build_dataset(neuroflux_cfg().dataset)
    accuracy = evaluate(model, data.test, batch_size=256, device=torch.device("cpu"))["top1"]
    assert accuracy == summary["test_acc"]
    assert sum(p.numel() for p in model.parameters()) == summary["params_total"]


def test_cached_activations_equal_a_fresh_pass_of_the_frozen_block(tmp_path: Path):
    from drive_runner.memory.neuroflux import NeuroFluxTrainer
    from drive_runner.models import build_model

    cfg = neuroflux_cfg("model=vgg11", "trainer.group_ratio=1.01")  # a block per unit: block 0 is the first conv
    data = build_dataset(cfg.dataset)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    trainer = NeuroFluxTrainer(model, data, cfg.trainer, cfg.hardware, device=torch.device("cpu"), seed=0,
                               run_dir=tmp_path, log=lambda *a, **k: None, line=lambda text: None, warn=print)
    units = trainer._units()
    train_idx, _ = trainer._validation_split()
    block = trainer._plan(units, len(train_idx))[0]
    source = trainer_source(data)
    trainer._train_block(0, block, source, train_idx, epochs=1)
    assert all(p.grad is None and not p.requires_grad for u in block.units for p in u.module.parameters())
    cached, cached_test, _ = trainer._cache(0, block, source, trainer_source(data, split="test"))
    indices = torch.arange(0, data.train.num_samples, 97)
    images, _ = data.train.take(indices)
    with torch.no_grad():
        fresh = images
        for unit in block.units:
            fresh = unit.module(fresh)
    features, _ = cached.take(indices, augment=False, generator=None)
    torch.testing.assert_close(features, fresh, atol=2e-3, rtol=2e-3)  # fp16 storage
    assert features.abs().sum() > 0 and not torch.equal(features, fresh)  # stored in half precision


def trainer_source(data, split: str = "train"):
    from drive_runner.memory.neuroflux import _Source

    source = data.train if split == "train" else data.test
    return _Source(lambda i, aug, g: source.take(i, augment=aug, generator=g), source.labels)


def test_disk_cache_is_a_memory_mapped_file(tmp_path: Path):
    cache = ActivationCache(4, (2, 3), "fp32", tmp_path / "cache" / "block0.bin")
    cache.write(0, torch.arange(24.0).reshape(4, 2, 3))
    assert (tmp_path / "cache" / "block0.bin").stat().st_size == 4 * 2 * 3 * 4
    reopened = torch.from_file(str(tmp_path / "cache" / "block0.bin"), size=24, dtype=torch.float32)
    assert torch.equal(reopened, torch.arange(24.0))
    assert cache.location == "disk"


def test_a_disk_cached_run_completes_and_says_so(tmp_path: Path):
    summary = run(neuroflux_cfg("model=lenet5", "dataset.image_size=28", "trainer.cache=disk",
                                "trainer.epochs_per_block=1"), tmp_path)
    assert summary["status"] == "completed"
    assert all(c["location"] == "disk" for c in summary["neuroflux"]["caches"])
    assert list((tmp_path / "cache").glob("*.bin"))


def test_head_width_candidates_and_shapes():
    assert filter_candidates(512, 16) == [512, 256, 128, 64]
    assert filter_candidates(64, 16) == [64, 32, 16]
    assert filter_candidates(20, 16) == [20, 16]
    head = build_head(head_spec((64, 8, 8), 32, 10))
    assert head(torch.randn(2, 64, 8, 8)).shape == (2, 10)
    assert build_head(head_spec((300,), 0, 10))(torch.randn(2, 300)).shape == (2, 10)


def test_a_budget_too_small_for_a_block_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="hardware.memory_budget_mb"):
        run(neuroflux_cfg("hardware.memory_budget_mb=20"), tmp_path)


@pytest.mark.parametrize("overrides, key", [(["method=drive"], "method"), (["model=resnet18", "dataset.image_size=128"], "model")])
def test_neuroflux_needs_a_dense_model_it_can_split(overrides, key):
    with pytest.raises(ConfigError) as error:
        validate(neuroflux_cfg(*overrides))
    assert error.value.key == key


def test_a_run_that_dies_in_its_second_block_resumes_from_the_first(tmp_path: Path, monkeypatch, neuroflux_run):
    from drive_runner.memory.neuroflux import NeuroFluxTrainer

    reference, _ = neuroflux_run
    real_train_block = NeuroFluxTrainer._train_block
    trained = []

    class Crash(BaseException):
        """Stands for the process dying."""

    def dies_in_block_1(self, number, *args):
        trained.append(number)
        if number == 1:
            raise Crash()
        return real_train_block(self, number, *args)

    cfg = neuroflux_cfg("trainer.cache_precision=fp32")
    monkeypatch.setattr(NeuroFluxTrainer, "_train_block", dies_in_block_1)
    with pytest.raises(Crash):
        run(cfg, tmp_path)
    assert torch.load(tmp_path / "checkpoints" / "state.pt", weights_only=True)["neuroflux"]["blocks_done"] == 1
    trained.clear()
    monkeypatch.setattr(NeuroFluxTrainer, "_train_block", lambda self, number, *args: (
        trained.append(number), real_train_block(self, number, *args))[1])
    resumed = run(cfg, tmp_path)
    assert trained[0] == 1  # block 0 was not trained again
    assert resumed["attempt"] == 2 and resumed["test_acc"] == reference["test_acc"]
    assert resumed["neuroflux"]["exits"] == reference["neuroflux"]["exits"]
    assert resumed["neuroflux"]["chosen_exit"] == reference["neuroflux"]["chosen_exit"]


@pytest.mark.parametrize("key", ["trainer.optimizer=adam", "trainer.lr_milestones=[3]", "trainer.weight_decay=0.1"])
def test_neuroflux_refuses_the_backprop_keys_it_would_ignore(key):
    """Every block trains with SGD on NeuroFlux's own schedule: the recipe's optimizer and schedule keys are
    refused by name, not silently ignored."""
    name = key.split("=")[0]
    with pytest.raises(ConfigError) as error:
        neuroflux_cfg(key)
    assert error.value.key == name and "unknown key; trainer keys are" in str(error.value)
    assert "optimizer" not in neuroflux_cfg().trainer and neuroflux_cfg().trainer.lr == 0.1


def test_neuroflux_honours_the_epoch_budget_reports_what_it_trained_and_is_logged_to_wandb(tmp_path: Path):
    """Issue 21, item 3: trainer.epochs is the budget over all blocks (not 10 epochs a block whatever it says),
    summary.json records the block epochs trained, every block epoch prints a line, and the run is logged to W&B
    with its exit model as the artifact (no W&B warning)."""
    from tests.conftest import run_cli

    result = run_cli("trainer=neuroflux", "dataset=digits", "dataset.image_size=16", "model=vgg11", "trainer.epochs=2",
                     f"hardware.memory_budget_mb={BUDGET_MB}", "logger=wandb", "logger.mode=offline", "hydra.run.dir=run",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    blocks = summary["neuroflux"]["blocks"]
    assert summary["neuroflux"]["epochs_per_block"] == 1 and all(block["epochs"] == 1 for block in blocks)
    assert summary["epochs"] == len(blocks) == summary["neuroflux"]["epochs_trained"]
    assert all(f"neuroflux: block {n} epoch 1/1" in result.stdout for n in range(len(blocks)))
    assert "W&B" not in result.stdout + result.stderr and list((tmp_path / "run" / "wandb").glob("offline-run-*"))
