"""Every method end to end on digits, and the invariants of the iterative ones (docs/conventions.md)."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.pipeline import run
from drive_runner.methods import prune
from drive_runner.pruning.masks import keep_count
from drive_runner.pruning.schedules import gmp_sparsity, imp_survivors
from drive_runner.validation import validate
from tests.conftest import quick_cfg


def events(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["event"] == kind]


ITERATED = ["schedule=exponential", "method.iterations=4"]  # one-shot methods run as 4 steps, to check monotonicity


@pytest.mark.parametrize(
    "method, extra",
    [
        ("random", ITERATED),
        ("magnitude", ITERATED),
        ("snip", ITERATED),
        ("grasp", ITERATED),
        ("synflow", ["method.iterations=20"]),
        ("drive", ["method.iterations=20", "method.warmup_epochs=1"]),
        ("imp", ["sparsity=0.6"]),
        ("gmp", ["schedule.interval_steps=5"]),
    ],
)
def test_every_method_lands_exactly_on_the_target_with_monotone_masks(tmp_path, monkeypatch, method, extra):
    from drive_runner.pruning.masks import MaskEngine

    selections = []
    install = MaskEngine.set_masks

    def recording(engine, new_masks):
        install(engine, new_masks)
        selections.append({name: mask.clone() for name, mask in engine.masks.items()})

    monkeypatch.setattr(MaskEngine, "set_masks", recording)
    summary = run(quick_cfg(f"method={method}", "trainer.epochs=2", *extra), tmp_path)
    assert summary["status"] == "completed"
    prunable = summary["params_prunable"]
    target = round(prunable * (1 - summary["target_sparsity"]))
    assert sum(layer["survivors"] for layer in summary["layers"]) == target
    assert abs(summary["achieved_sparsity"] - summary["target_sparsity"]) <= 0.001
    assert len(selections) >= 4
    for step, (before, after) in enumerate(zip(selections, selections[1:]), start=1):
        assert all(not (after[k] & ~before[k]).any() for k in after), f"a pruned weight came back at step {step}"
    assert sum(int(m.sum()) for m in selections[-1].values()) == target
    assert summary["timings_s"]["find_mask"] > 0


def test_iterative_magnitude_reproduces_the_one_shot_mask():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    one_shot = prune(model, "magnitude", 0.8, input_shape=(20,))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    iterated = prune(model, "magnitude", 0.8, schedule="exponential", iterations=7, input_shape=(20,))
    assert all(torch.equal(one_shot[k], iterated[k]) for k in one_shot)


def test_synflow_schedule_is_100_exponential_steps(tmp_path):
    run(quick_cfg("method=synflow", "trainer.epochs=0", "sparsity=0.99"), tmp_path)
    densities = [row["density"] for row in events(tmp_path, "prune_step")]
    assert len(densities) == 100
    assert densities[0] == pytest.approx(0.01 ** (1 / 100), abs=1e-4)


def test_imp_level_densities():
    n = 266_200
    survivors = imp_survivors(n, 0, 0.2, exact_target=False)
    for level, r in enumerate(survivors[:25], start=1):
        assert n * 0.8**level - level <= r <= n * 0.8**level
        previous = n if level == 1 else survivors[level - 2]
        assert r == previous - (previous + 4) // 5
    assert survivors[9] / n == pytest.approx(0.1074, abs=1e-4)
    for sparsity, levels in [(0.9, 11), (0.95, 14), (0.98, 18), (0.99, 21)]:
        path = imp_survivors(n, keep_count(n, 1 - sparsity), 0.2)
        assert len(path) == levels == math.ceil(math.log(1 - sparsity) / math.log(0.8))
        assert path[-1] == keep_count(n, 1 - sparsity)


def test_imp_trains_every_level_and_logs_the_curve(tmp_path):
    summary = run(quick_cfg("method=imp", "sparsity=0.5", "trainer.epochs=1"), tmp_path)
    levels = events(tmp_path, "imp_level")
    assert [row["level"] for row in levels] == [0, 1, 2, 3]  # 0.8^3 > 0.5 > 0.8^4
    phases = [row["phase"] for row in events(tmp_path, "epoch")]
    assert phases == ["imp-level-0", "imp-level-1", "imp-level-2", "imp-level-3", "train"]
    # LeNet keeps its output layer dense under IMP (open_lth preset).
    assert [layer["name"] for layer in summary["layers"]] == ["fc1.weight", "fc2.weight"]


def test_layerwise_imp_removes_each_layers_own_share_per_level_the_output_layer_its_own(tmp_path):
    """The Lottery Ticket paper's rates: 20% of each hidden layer's survivors per level, 10% of the output's."""
    summary = run(quick_cfg("method=imp", "prune.scope=layerwise", "method.prune_output_layer=true",
                            "method.output_fraction=0.1", "sparsity=0.36", "trainer.epochs=1"), tmp_path)
    assert [row["level"] for row in events(tmp_path, "imp_level")] == [0, 1, 2]

    def after_three_levels(size, rate):  # at 0.8^2 the output layer still holds the total above 64%
        for _ in range(3):
            size -= math.ceil(rate * size - 1e-9)
        return size

    layers = {layer["name"]: layer for layer in summary["layers"]}
    assert set(layers) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    for name, rate in [("fc1.weight", 0.2), ("fc2.weight", 0.2), ("fc3.weight", 0.1)]:
        assert layers[name]["survivors"] == after_three_levels(layers[name]["numel"], rate)


def test_imp_rewinds_the_complete_state_including_batchnorm(tmp_path):
    from drive_runner.data import build_dataset
    from drive_runner.models import build_model
    from drive_runner.pruning.masks import MaskEngine
    from drive_runner.train.loop import StepSnapshot, TrainingSession

    cfg = quick_cfg("dataset.image_size=16", "model=vgg11", "trainer.epochs=1")
    data = build_dataset(cfg.dataset, seed=0)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    engine = MaskEngine(model)
    session = TrainingSession(model, data, cfg.trainer, device=torch.device("cpu"), precision="fp32", seed=0, engine=engine)
    snapshot = StepSnapshot(3)
    session.callbacks.append(snapshot)
    session.train_until(1, "train")
    assert snapshot.state["features.bn1.num_batches_tracked"] == 3
    engine.prune_to_density({n: p.detach().abs() for n, p in engine.params.items()}, 0.5)
    session.rewind(snapshot.state, 3)
    state = model.state_dict()
    masks = engine.masks
    for key, value in snapshot.state.items():
        expected = value * masks[key] if key in masks else value
        assert torch.equal(state[key], expected), key
    assert session.step == 3 and session.epoch == 0
    expected_lr = cfg.trainer.lr  # no milestone passed yet
    assert session.optimizer.param_groups[0]["lr"] == pytest.approx(expected_lr)
    assert not session.optimizer.state  # a fresh optimizer
    history = session.train_until(1, "retrain")  # finishes the partial epoch only
    assert session.step == session.steps_per_epoch and len(history) == 1


def test_gmp_cubic_values():
    values = [gmp_sparsity(t, start_step=100, end_step=500, initial=0.0, final=0.9) for t in (100, 200, 300, 400, 500)]
    assert values == pytest.approx([0.0, 0.5203125, 0.7875, 0.8859375, 0.9])
    assert gmp_sparsity(50, start_step=100, end_step=500, initial=0.1, final=0.9) == 0.1
    assert gmp_sparsity(900, start_step=100, end_step=500, initial=0.0, final=0.9) == 0.9


def test_gmp_prunes_only_inside_its_window_and_then_keeps_the_mask(tmp_path, monkeypatch):
    from drive_runner.methods import gmp

    seen = []  # (optimizer step, survivors) after every step of sparse training
    hook = gmp._GradualPruning.on_step_end

    def recording(callback, session):
        hook(callback, session)
        seen.append((session.step, callback.ctx.engine.survivors()))

    monkeypatch.setattr(gmp._GradualPruning, "on_step_end", recording)
    summary = run(quick_cfg("method=gmp", "trainer.epochs=4", "schedule.start_epoch=1", "schedule.end_epoch=3",
                            "schedule.interval_steps=7"), tmp_path)
    steps_per_epoch = 23  # 1,437 digits training images in batches of 64
    start, end = steps_per_epoch, 3 * steps_per_epoch
    total = summary["params_prunable"]
    changes = [step for (step, count), (_, before) in zip(seen[1:], seen) if count != before]
    assert all(count == total for step, count in seen if step < start)  # dense before the window
    assert changes and min(changes) >= start and max(changes) == end  # pruning only at its events
    assert all((step - start) % 7 == 0 or step == end for step in changes)
    final = round(total * 0.1)
    assert all(count == final for step, count in seen if step >= end)  # frozen after it
    assert [row["density"] for row in events(tmp_path, "prune_step")][-1] == final / total
    assert summary["timings_s"]["find_mask"] < summary["timings_s"]["train"] + summary["timings_s"]["prune"]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["method=imp", "method.warmup_epochs=1"], "method.warmup_epochs"),
        (["method=imp", "method.output_fraction=0.1"], "method.output_fraction"),
        (["method=gmp", "trainer.epochs=0"], "trainer.epochs"),
        (["method=gmp", "schedule.end_epoch=5"], "schedule.end_epoch"),
        (["method=imp", "trainer.epochs=0"], "trainer.epochs"),
        (["method=drive", "method.alpha=0", "method.beta=0", "method.gamma=0"], "method.alpha"),
        (["method=gmp", "schedule.initial_sparsity=0.95"], "schedule.initial_sparsity"),
        (["method=drive", "method.normalization=softmax"], "method.normalization"),
        (["method=drive", "method.warmup_epochs=0", "method.after_prune=rewind_step", "method.rewind_step=5"],
         "method.rewind_step"),
        (["method=synflow", "schedule=cubic"], "schedule"),
    ],
)
def test_method_rules_are_checked_before_work(overrides, key):
    with pytest.raises(ConfigError) as error:
        validate(quick_cfg("trainer.epochs=3", *overrides))
    assert error.value.key == key


@pytest.mark.parametrize("after_prune", ["rewind_init", "rewind_step"])
def test_drive_rewind_ablations_put_the_mask_on_the_weights_they_promise(tmp_path, after_prune):
    from drive_runner.data import build_dataset
    from drive_runner.models import build_model
    from drive_runner.train.loop import StepSnapshot, TrainingSession

    # Training ends with the warm-up, so the final weights are exactly the rewound ones under the mask.
    cfg = quick_cfg("method=drive", "trainer.epochs=2", "method.warmup_epochs=2", "method.iterations=5",
                    f"method.after_prune={after_prune}", "method.rewind_step=4")
    summary = run(cfg, tmp_path)
    assert summary["achieved_sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert [row["epoch"] for row in events(tmp_path, "epoch")] == [1, 2]
    data = build_dataset(cfg.dataset, seed=0)
    torch.manual_seed(0)  # the run's initialisation
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    expected = model.state_dict()
    if after_prune == "rewind_step":  # the weights after 4 steps of the same warm-up
        session = TrainingSession(model, data, cfg.trainer, device=torch.device("cpu"), precision="fp32", seed=0)
        snapshot = StepSnapshot(4)
        session.callbacks.append(snapshot)
        session.train_until(1, "warmup")
        expected = snapshot.state
    checkpoint = torch.load(tmp_path / "checkpoints" / "final.pt", weights_only=True)
    for key, value in checkpoint["state_dict"].items():
        mask = checkpoint["masks"].get(key)
        assert torch.equal(value, expected[key] * mask if mask is not None else expected[key]), key


def test_prune_api_applies_binary_masks_to_any_module():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    generator = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 1, 8, 8, generator=generator), torch.randint(0, 10, (16,), generator=generator))]
    for method in ("random", "magnitude", "snip", "grasp", "synflow", "drive"):
        fresh = copy.deepcopy(model)
        masks = prune(fresh, method, 0.5, data, schedule="exponential", iterations=3)
        assert set(masks) == {"0.weight", "3.weight"}
        assert all(mask.dtype == torch.bool for mask in masks.values())
        kept = sum(int(mask.sum()) for mask in masks.values())
        assert kept == keep_count(4 * 9 + 144 * 10, 0.5)
        assert (fresh[0].weight[~masks["0.weight"]] == 0).all()
        assert torch.equal(fresh[0].weight_keep_mask, masks["0.weight"])


def test_pruning_an_already_pruned_model_continues_from_its_density():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    first = prune(model, "random", 0.5, input_shape=(20,))
    second = prune(model, "magnitude", 0.9, schedule="exponential", iterations=4, input_shape=(20,))
    assert all(not (second[k] & ~first[k]).any() for k in first)
    assert sum(int(m.sum()) for m in second.values()) == keep_count(20 * 30 + 30 * 10, 0.1)
    with pytest.raises(ConfigError, match="already sparser"):
        prune(model, "magnitude", 0.5, schedule="exponential", iterations=2, input_shape=(20,))


def test_prune_api_refuses_methods_that_train():
    with pytest.raises(ValueError, match="drive-run method=imp"):
        prune(nn.Linear(3, 2), "imp", 0.5, [(torch.randn(2, 3), torch.tensor([0, 1]))])
    with pytest.raises(ConfigError, match="method.iteration"):
        prune(nn.Linear(3, 2), "synflow", 0.5, input_shape=(3,), iteration=4)
