"""PruneTrain: the group-lasso penalty, the channel union, surgery that preserves the function, and
checkpoints of a shrunken model (docs/prunetrain.md)."""

import copy
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from drive_runner.checkpoint import checkpoint_payload, load_checkpoint
from drive_runner.data import build_dataset
from drive_runner.errors import ConfigError
from drive_runner.memory.accounting import MB
from drive_runner.memory.budget import choose_batch_size, measure
from drive_runner.models import build_model
from drive_runner.pipeline import run
from drive_runner.pruning.masks import MaskEngine
from drive_runner.structured import architecture
from drive_runner.structured.group_lasso import grouped_layers, penalty
from drive_runner.methods.prunetrain import _GroupLassoAndReconfigure
from drive_runner.structured.reconfigure import _dependency_graph, reconfigure
from drive_runner.train.flops import training_flops
from drive_runner.train.loop import TrainingCallback, TrainingSession
from drive_runner.validation import validate
from tests.conftest import quick_cfg


def model_with_statistics(name: str, shape=(3, 16, 16), seed=0) -> nn.Module:
    """A model whose BN layers have non-trivial running statistics and affine parameters."""
    torch.manual_seed(seed)
    model = build_model({"name": name}, shape, 10)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return model.eval()


def kill(model: nn.Module, producers=(), consumers=(), channels=()):
    """Zero output filters of `producers` and input slices of `consumers` for `channels`."""
    with torch.no_grad():
        for name in producers:
            model.get_submodule(name).weight[list(channels)] = 0
        for name in consumers:
            model.get_submodule(name).weight[:, list(channels)] = 0


def assert_same_function(before: nn.Module, after: nn.Module, shape=(3, 16, 16)):
    inputs = torch.randn(8, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = before(inputs), after(inputs)
    assert float((expected - actual).norm() / expected.norm()) < 1e-5


def tiny_convnet() -> nn.Module:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.Flatten(),
                          nn.Linear(4 * 2 * 2, 5)).double()
    model.classifier_name = "4"
    return model


def plain_penalty(model: nn.Module) -> float:
    """R(W) written out group by group: conv 0 has filters only (its inputs are the image), conv 2
    filters and input slices, the classifier input columns only (class outputs are never pruned)."""
    def norm(values) -> float:
        return math.sqrt(sum(float(v) ** 2 for v in values.reshape(-1)) + 1e-8)

    first, second, classifier = (model[i].weight.detach() for i in (0, 2, 4))
    return (sum(norm(first[k]) for k in range(3)) + sum(norm(second[k]) for k in range(4))
            + sum(norm(second[:, c]) for c in range(3)) + sum(norm(classifier[:, j]) for j in range(16)))


def test_group_lasso_penalty_golden_value():
    model = tiny_convnet()
    assert float(penalty(grouped_layers(model)).detach()) == pytest.approx(plain_penalty(model), rel=1e-12)


def test_strength_is_fixed_on_the_first_batch_so_the_penalty_share_is_the_ratio_there():
    from types import SimpleNamespace

    from drive_runner.methods.prunetrain import _GroupLassoAndReconfigure

    model = tiny_convnet()
    logged = []
    ctx = SimpleNamespace(model=model, input_shape=(2, 4, 4), log=lambda event, **fields: logged.append(fields))
    callback = _GroupLassoAndReconfigure(ctx, SimpleNamespace(penalty_ratio=0.2, threshold=1e-4, interval=10))
    generator = torch.Generator().manual_seed(6)
    inputs = torch.randn(8, 2, 4, 4, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 5, (8,), generator=generator)
    with torch.no_grad():
        task = nn.functional.cross_entropy(model(inputs), targets)
        extra = callback.extra_loss(model, task)
    share = float(extra) / (float(task) + float(extra))
    assert share == pytest.approx(0.2, rel=1e-12)
    assert float(extra) == pytest.approx(logged[0]["strength"] * plain_penalty(model), rel=1e-12)
    strength = callback.strength
    with torch.no_grad():
        model[2].weight.mul_(0.5)  # a later batch and other weights: the strength stays what it was
        second = callback.extra_loss(model, task * 3)
    assert callback.strength == strength and float(second) == pytest.approx(strength * plain_penalty(model), rel=1e-12)


def test_group_families_skip_the_image_channels_and_the_class_outputs():
    model = build_model({"name": "vgg11"}, (3, 32, 32), 10)
    layers = {layer.name: layer for layer in grouped_layers(model)}
    assert not layers["features.conv1"].input_groups and layers["features.conv1"].output_groups
    assert layers["classifier"].input_groups and not layers["classifier"].output_groups
    assert layers["features.conv2"].input_groups and layers["features.conv2"].output_groups


def test_residual_channel_sets_match_the_hand_table():
    model = build_model({"name": "resnet20"}, (3, 32, 32), 10)
    graph = _dependency_graph(model, (3, 32, 32))
    names = {id(m): n for n, m in model.named_modules()}
    sets = {}
    for group in graph.get_all_groups(root_module_types=[nn.Conv2d, nn.Linear], ignored_layers=[model.fc]):
        members = {(names[id(i.dep.target.module)], i.dep.handler.__name__.split("_")[1]) for i in group.items
                   if isinstance(i.dep.target.module, (nn.Conv2d, nn.Linear))}
        sets[names[id(group.items[0].dep.target.module)]] = members
    stage1 = next(s for s in sets.values() if ("conv1", "out") in s)
    assert stage1 == {("conv1", "out"), *{(f"layer1.{b}.conv2", "out") for b in range(3)},
                      *{(f"layer1.{b}.conv1", "in") for b in range(3)}, ("layer2.0.conv1", "in"),
                      ("layer2.0.shortcut.0", "in")}
    stage3 = next(s for s in sets.values() if ("fc", "in") in s)
    assert stage3 == {("layer3.0.shortcut.0", "out"), *{(f"layer3.{b}.conv2", "out") for b in range(3)},
                      *{(f"layer3.{b}.conv1", "in") for b in (1, 2)}, ("fc", "in")}
    inner = next(s for s in sets.values() if ("layer2.1.conv1", "out") in s)
    assert inner == {("layer2.1.conv1", "out"), ("layer2.1.conv2", "in")}
    assert len(sets) == 3 + 9  # three residual streams and one inner set per block


def test_vgg_surgery_preserves_the_function_and_slices_momentum_and_bn():
    model = model_with_statistics("vgg11")
    kill(model, producers=["features.conv3"], consumers=["features.conv4"], channels=range(0, 256, 3))
    kill(model, producers=["features.conv4"], channels=[5])  # filter dead but its consumer slice alive: kept
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for param in model.parameters():
        optimizer.state[param]["momentum_buffer"] = torch.randn_like(param)
    reference = copy.deepcopy(model)
    old_momentum = optimizer.state[model.features.conv4.weight]["momentum_buffer"].clone()
    old_bn = reference.features.bn3
    report = reconfigure(model, (3, 16, 16), 1e-4, dict(optimizer.state))

    kept = [c for c in range(256) if c % 3]
    assert model.features.conv3.out_channels == len(kept) and model.features.conv4.in_channels == len(kept)
    assert model.features.conv4.out_channels == 256
    assert report.removed_channels == {"features.conv3": 256 - len(kept)}
    assert_same_function(reference, model)
    new_momentum = report.optimizer_state[model.features.conv4.weight]["momentum_buffer"]
    assert torch.equal(new_momentum, old_momentum[:, kept])
    bn = model.features.bn3
    assert torch.equal(bn.running_mean, old_bn.running_mean[kept])
    assert torch.equal(bn.running_var, old_bn.running_var[kept])
    assert torch.equal(bn.weight.detach(), old_bn.weight.detach()[kept])


def test_resnet_stream_channel_goes_only_when_every_writer_and_reader_is_dead():
    model = model_with_statistics("resnet20")
    writers = ["layer2.0.shortcut.0", "layer2.0.conv2", "layer2.1.conv2", "layer2.2.conv2"]
    readers = ["layer2.1.conv1", "layer2.2.conv1", "layer3.0.conv1", "layer3.0.shortcut.0"]
    kill(model, producers=writers, consumers=readers, channels=[3, 7])
    kill(model, producers=writers, consumers=readers[:-1], channels=[9])  # one reader still uses channel 9
    reference = copy.deepcopy(model)
    reconfigure(model, (3, 16, 16), 1e-4)
    assert model.layer2[0].conv2.out_channels == 30 and model.layer3[0].shortcut[0].in_channels == 30
    assert_same_function(reference, model)


def test_resnet_block_inner_channels_and_a_dead_branch():
    model = model_with_statistics("resnet20")
    kill(model, producers=["layer1.1.conv1"], consumers=["layer1.1.conv2"], channels=range(10))
    kill(model, producers=["layer3.2.conv1"], consumers=["layer3.2.conv2"], channels=range(64))
    reference = copy.deepcopy(model)
    report = reconfigure(model, (3, 16, 16), 1e-4)
    assert model.layer1[1].conv1.out_channels == 6
    assert report.removed_branches == ["layer3.2"] and model.layer3[2].branch_removed
    assert not hasattr(model.layer3[2], "conv1")
    assert_same_function(reference, model)


def test_dead_branch_of_a_downsampling_block_keeps_its_projection():
    model = model_with_statistics("resnet20")
    kill(model, producers=["layer2.0.conv1"], consumers=["layer2.0.conv2"], channels=range(32))
    reference = copy.deepcopy(model)
    reconfigure(model, (3, 16, 16), 1e-4)
    assert model.layer2[0].branch_removed and isinstance(model.layer2[0].shortcut, nn.Sequential)
    assert_same_function(reference, model)


def test_shrunken_model_checkpoint_reloads_with_weights_only(tmp_path: Path):
    model = model_with_statistics("resnet20")
    kill(model, producers=["layer1.0.conv1"], consumers=["layer1.0.conv2"], channels=range(16))
    kill(model, producers=["layer2.2.conv1"], consumers=["layer2.2.conv2"], channels=range(5))
    reconfigure(model, (3, 16, 16), 1e-4)
    engine = MaskEngine(model)
    torch.save(checkpoint_payload({"name": "resnet20"}, model, engine, (3, 16, 16), 10), tmp_path / "final.pt")
    description = torch.load(tmp_path / "final.pt", weights_only=True)["architecture"]
    assert description["removed_branches"] == ["layer1.0"]
    assert description["layers"]["layer2.2.conv1"] == [32, 27]
    reloaded, _ = load_checkpoint(tmp_path / "final.pt")
    assert_same_function(model, reloaded.eval())
    assert architecture.describe(reloaded) == architecture.describe(model)


def test_training_flops_follow_the_cost_model():
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(8 * 5 * 5, 10))
    model.classifier_name = "2"
    forward_and_weight_gradient = 2 * 4 * 9 * 8 * 25
    data_gradient = 7 * 7 * 8 * 9 * 4
    assert training_flops(model, (4, 5, 5)) == forward_and_weight_gradient + data_gradient + 3 * 200 * 10


@pytest.mark.parametrize("override, key", [("method.penalty_ratio=1.0", "method.penalty_ratio"),
                                           ("method.penalty_ratio=0", "method.penalty_ratio"),
                                           ("method.interval=0", "method.interval"),
                                           ("method.max_batch_size=16", "method.max_batch_size")])
def test_bad_knobs_are_refused(override, key):
    with pytest.raises(ConfigError) as error:
        validate(quick_cfg("method=prunetrain", "method.interval=1", override))
    assert error.value.key == key


def test_prunetrain_run_shrinks_the_model_and_reports_it(tmp_path: Path):
    # A short run with a strong penalty and a coarse threshold, so channels die within a few epochs.
    summary = run(quick_cfg("method=prunetrain", "model=resnet20", "dataset.image_size=16", "trainer.epochs=4",
                            "method.interval=2", "method.penalty_ratio=0.9", "method.threshold=0.02"), tmp_path)
    assert summary["status"] == "completed" and summary["target_sparsity"] is None
    assert sum(summary["channels_final"].values()) < sum(summary["channels_initial"].values())
    assert 0 < summary["flops_reduction"] < 1 and summary["train_flops_final"] < summary["train_flops_initial"]
    assert [r["epoch"] for r in summary["reconfigurations"]] == [2, 4]
    reloaded, _ = load_checkpoint(tmp_path / "checkpoints" / "final.pt")
    from drive_runner.data import build_dataset
    from drive_runner.train.loop import evaluate

    data = build_dataset(quick_cfg("dataset.image_size=16").dataset)
    accuracy = evaluate(reloaded, data.test, batch_size=256, device=torch.device("cpu"))["top1"]
    assert accuracy == pytest.approx(summary["test_acc"])


def test_lenet5_flattened_classifier_input_is_cut_per_channel():
    torch.manual_seed(0)
    model = build_model({"name": "lenet5"}, (1, 28, 28), 10).eval()
    with torch.no_grad():
        model.conv2.weight[[1, 4]] = 0
        columns = torch.arange(800).reshape(50, 16)[[1, 4]].reshape(-1)
        model.fc3.weight[:, columns] = 0
    reference = copy.deepcopy(model)
    reconfigure(model, (1, 28, 28), 1e-4)
    assert model.conv2.out_channels == 48 and model.fc3.in_features == 48 * 16
    assert_same_function(reference, model, shape=(1, 28, 28))


def test_a_short_run_that_removes_nothing_says_why(tmp_path: Path, capsys):
    summary = run(quick_cfg("method=prunetrain", "model=resnet20", "dataset.image_size=16", "trainer.epochs=1",
                            "method.interval=1"), tmp_path)
    assert summary["flops_reduction"] == 0.0 and summary["penalty_budget"] > 0
    assert "PruneTrain removed no channel" in capsys.readouterr().err


# --------------------------------------------------------------------------- the dynamic mini-batch
def dying_convnet() -> nn.Module:
    """Two bias-free convs on 1-channel 8x8 digits where 24 of conv 0's 32 filters and conv 2's slices
    reading them are exactly zero: no gradient ever reaches them, so the first reconfiguration removes
    them whatever the training does, and the activation memory per sample drops by about half."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(32, 8, 3, padding=1, bias=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    model.classifier_name = "6"
    with torch.no_grad():
        model[0].weight[:24] = 0
        model[2].weight[:, :24] = 0
    return model


def dynamic_run(budget: str | None, *overrides: str, watch=None):
    """Two epochs of PruneTrain on `dying_convnet` with a reconfiguration after each (cosine LR over the two
    epochs): the session, the callback, every logged event and the budget in MB. `budget` is "tight"
    (batch 32 fits the full model, 64 does not) or None."""
    cfg = quick_cfg("method=prunetrain", "trainer.epochs=2", "method.interval=1", "trainer.lr_schedule=cosine",
                    "trainer.batch_size=auto" if budget else "trainer.batch_size=32", *overrides)
    data = build_dataset(cfg.dataset, seed=0)
    model, device = dying_convnet(), torch.device("cpu")
    budget_mb = None
    if budget:
        memory = measure(model, data.input_shape, data.num_classes, cfg.trainer, cfg.hardware, device)
        budget_mb = (memory.peak(32) + memory.peak(64)) / 2 / MB
    hardware = SimpleNamespace(memory_budget_mb=budget_mb, memory_margin_mb=0.0)
    start = choose_batch_size(model, data.input_shape, data.num_classes, data.train.num_samples, cfg.trainer,
                              hardware, device) if budget else SimpleNamespace(batch_size=32, lr_scale=1.0, memory=None)
    engine = MaskEngine(model)
    session = TrainingSession(model, data, cfg.trainer, device=device, precision="fp32", seed=0, engine=engine,
                              batch_size=start.batch_size, lr_scale=start.lr_scale,
                              memory_static_bytes=start.memory.static if start.memory else None)
    events = []
    ctx = SimpleNamespace(model=model, engine=engine, input_shape=data.input_shape, num_classes=data.num_classes,
                          device=device, session=session, log=lambda event, **fields: events.append((event, fields)),
                          warn=lambda message: None)
    callback = _GroupLassoAndReconfigure(ctx, cfg.method, hardware)
    session.callbacks = [callback, *([watch] if watch else [])]
    session.train_until(2, "train")
    return SimpleNamespace(cfg=cfg, data=data, session=session, callback=callback, events=events, budget_mb=budget_mb,
                           start=start, ctx=ctx)


@pytest.fixture(scope="module")
def grown():
    """The tight-budget run, with the training state as it was saved at the end of epoch 1."""
    class SaveAfterEpoch1(TrainingCallback):
        def on_epoch_end(self, session, metrics):
            if session.epoch == 1:
                self.saved = copy.deepcopy({"model": session.model, "session": session.state_dict(),
                                            "method": callback_of(session).state_dict()})

    watch = SaveAfterEpoch1()
    result = dynamic_run("tight", watch=watch)
    result.saved = watch.saved
    return result


def callback_of(session):
    return next(c for c in session.callbacks if isinstance(c, _GroupLassoAndReconfigure))


def test_under_a_budget_the_batch_grows_after_a_shrinking_reconfiguration_with_the_lr(grown):
    session, cfg = grown.session, grown.cfg
    first, second = session.history
    assert grown.start.batch_size == 32 and first["batch_size"] == 32  # what the full model fits
    assert first["channels"]["0"] == 32 and second["channels"]["0"] == 8
    # The smaller model fits 64 (measured), 128 is over the budget: the largest power of two that fits.
    assert second["batch_size"] == 64
    reconfigured = [fields for event, fields in grown.events if event == "reconfigure"]
    assert reconfigured[0]["batch_size"] == 64 and reconfigured[0]["removed_channels"] == 24
    # Linear in the batch from the start: 32 at lr x 32/64 (the recipe's reference batch), then 64 at lr x 1.
    assert reconfigured[0]["lr_scale"] == pytest.approx(grown.start.lr_scale * 2) == pytest.approx(1.0)
    # The schedule stays in epochs: epoch 2 starts half-way down the 2-epoch cosine, at the new scale.
    assert first["lr"] == pytest.approx(cfg.trainer.lr * 0.5)
    assert second["lr"] == pytest.approx(cfg.trainer.lr * 1.0 * 0.5)
    assert session.steps_per_epoch == math.ceil(grown.data.train.num_samples / 64)
    assert session.step == 2 * session.steps_per_epoch and session.epoch == 2
    assert session.measured_peak_bytes <= grown.budget_mb * MB
    history = grown.callback.summary()["dynamic_batch"]["history"]
    assert [(h["from_epoch"], h["batch_size"]) for h in history] == [(1, 32), (2, 64)]
    assert history[1]["model_peak_mb"] <= grown.budget_mb
    # No growth after the last epoch: nothing is left to train with it.
    assert reconfigured[1]["batch_size"] == 64 and len(history) == 2


def test_the_growth_stops_at_method_max_batch_size():
    bounded = dynamic_run("tight", "method.max_batch_size=48")
    assert [h["batch_size"] for h in bounded.session.history] == [32, 32]  # the next power of two is 64 > 48
    assert bounded.callback.summary()["dynamic_batch"]["max_batch"] == 48


@pytest.mark.parametrize("budget, overrides", [(None, ()), ("tight", ("method.dynamic_batch=false",))])
def test_without_a_budget_or_with_the_switch_off_the_batch_never_changes(budget, overrides):
    fixed = dynamic_run(budget, *overrides)
    assert fixed.session.batch_size == fixed.start.batch_size == 32 and fixed.session.lr_scale == fixed.start.lr_scale
    assert all("batch_size" not in epoch for epoch in fixed.session.history)
    assert all("batch_size" not in fields for event, fields in fixed.events if event == "reconfigure")
    assert "dynamic_batch" not in fixed.callback.summary()
    assert fixed.session.history[0]["channels"]["0"] == 32 and fixed.session.history[1]["channels"]["0"] == 8


def test_a_resume_after_the_batch_grew_continues_with_the_grown_batch(grown):
    """The state saved at the end of epoch 1 (the model already shrunk, the batch grown) loaded into a new
    session that starts like the run did, at batch 32: epoch 2 trains with 64 at the grown LR and ends
    where the uninterrupted run ended."""
    saved, cfg = grown.saved, grown.cfg
    model = saved["model"]
    engine = MaskEngine(model)
    session = TrainingSession(model, grown.data, cfg.trainer, device=torch.device("cpu"), precision="fp32", seed=0,
                              engine=engine, batch_size=grown.start.batch_size, lr_scale=grown.start.lr_scale,
                              memory_static_bytes=grown.start.memory.static)
    session.load_state_dict(saved["session"])
    assert (session.batch_size, session.lr_scale, session.epoch) == (64, 1.0, 1)
    assert session.step == session.steps_per_epoch == math.ceil(grown.data.train.num_samples / 64)
    ctx = SimpleNamespace(**{**vars(grown.ctx), "model": model, "engine": engine, "session": session})
    callback = _GroupLassoAndReconfigure(ctx, cfg.method, SimpleNamespace(memory_budget_mb=grown.budget_mb,
                                                                          memory_margin_mb=0.0))
    callback.load_state_dict(saved["method"])
    session.callbacks = [callback]
    session.train_until(2, "train")
    uninterrupted = grown.session
    assert session.history[-1]["batch_size"] == 64 and session.history[-1]["lr"] == uninterrupted.history[-1]["lr"]
    assert session.step == uninterrupted.step
    for (name, mine), (_, theirs) in zip(model.state_dict().items(), uninterrupted.model.state_dict().items()):
        assert torch.equal(mine, theirs), name
    assert callback.summary()["dynamic_batch"] == grown.callback.summary()["dynamic_batch"]


def test_a_budgeted_run_reports_the_batch_per_interval(tmp_path: Path):
    """The pipeline hands the budget to PruneTrain: LeNet-300-100 on 8x8 digits under a budget that fits
    batch 32 and not 64; every group starts under a threshold of 0.2, so the first reconfiguration removes
    most units and the batch grows to the bound, 4 x 32."""
    summary = run(quick_cfg("method=prunetrain", "trainer.epochs=2", "method.interval=1", "method.penalty_ratio=0.9",
                            "method.threshold=0.2",
                            "trainer.batch_size=auto", "hardware.memory_budget_mb=0.714"), tmp_path)
    memory, dynamic = summary["memory"], summary["dynamic_batch"]
    assert memory["batch_size"] == 32 and memory["within_budget"] and memory["measured_peak_mb"] <= 0.714
    assert (dynamic["start_batch"], dynamic["max_batch"], dynamic["final_batch"]) == (32, 128, 128)
    assert [(h["batch_size"], h["lr_scale"]) for h in dynamic["history"]] == [(32, 0.5), (128, 2.0)]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["batch_size"], r["lr"]) for r in rows if r["event"] == "epoch"] == [(32, 0.05), (128, 0.2)]
    assert [(r["epoch"], r["batch_size"], r["lr_scale"]) for r in rows if r["event"] == "reconfigure"] == \
        [(1, 128, 2.0), (2, 128, 2.0)]


def test_a_prunetrain_run_that_removed_nothing_presents_no_reduction(tmp_path: Path):
    """Issue 21, item 9: with no channel removed, the epoch-time change is warm-up effects, not a reduction; and a
    change is printed with one sign (-3.9%, +61.2%), never '--'."""
    from drive_runner.tracking.console import summary_rows

    summary = run(quick_cfg("method=prunetrain", "trainer.epochs=2", "method.interval=1"), tmp_path)
    assert not any(r["removed_channels"] for r in summary["reconfigurations"])
    assert summary["epoch_time_reduction"] is None
    rows = dict(summary_rows(summary))
    assert rows["epoch time, last vs first"] == "no channel removed"
    assert rows["training FLOPs per sample, final vs initial"] == "+0.0%"
    assert dict(summary_rows({**summary, "flops_reduction": 0.039, "epoch_time_reduction": -0.612}))[
        "epoch time, last vs first"] == "+61.2%"
    assert "--" not in " ".join(dict(summary_rows({**summary, "flops_reduction": 0.039})).values())
