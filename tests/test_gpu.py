"""The GPU paths: bf16 autocast, channels_last, data on the device, torch.compile, the memory budget on the
CUDA allocator, NeuroFlux on CUDA, NCCL data parallelism on 2 GPUs and the throughput goal on VGG-16 in bf16.

Every test is marked `cuda` and is skipped, with the reason, where torch sees no CUDA device (the DDP
test needs 2). `python scripts/gpu_checks.py` or `pytest -m cuda tests/test_gpu.py -rA` runs them; each
prints what it measured. The CPU versions of the same code paths are in test_acceleration.py,
test_memory.py, test_neuroflux.py and test_distributed.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from drive_runner.pipeline import run
from drive_runner.train.acceleration import Acceleration
from tests.conftest import REPO, make_cfg, quick_cfg, read_json, run_cli
from tests.test_distributed import masks, torchrun


def needs_cuda(min_gpus: int = 1):
    """lightning-hydra-template's RunIf(min_gpus=N): skip, saying why, unless torch sees N CUDA devices."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return pytest.mark.skipif(count < min_gpus, reason=f"needs {min_gpus} CUDA device{'s' * (min_gpus > 1)}; "
                                                       f"torch sees {count} here")


pytestmark = [pytest.mark.cuda, needs_cuda()]

ON_CUDA = ["hardware.device=cuda"]
# LeNet-5 on 3-channel digits: with one channel an NCHW batch is also NHWC, and channels_last could not be seen.
CONV = [*ON_CUDA, "model=lenet5", "dataset.image_size=16", "dataset.channels=3", "trainer.lr=0.02", "method=snip",
        "sparsity=0.9"]
# On CUDA both default to on; the run the others are compared with has neither.
PLAIN = ["hardware.channels_last=false", "hardware.data_on_device=false"]
CHANCE = 0.1  # ten classes
# What the allocator holds beyond the counted tensors: cuBLAS's workspace (32 MiB on Hopper), cuDNN's, the
# rounding of its blocks. hardware.memory_margin_mb is that slack. The budget bounds training; the test
# evaluates in smaller batches so evaluation stays under the allocator's cap too.
MARGIN_MB = 48
SLACK = [f"hardware.memory_margin_mb={MARGIN_MB}", "trainer.eval_batch_size=128"]


@pytest.fixture(autouse=True)
def _fresh_allocator():
    """Each test starts with the whole GPU and a fresh peak; a budget's cap outlives its run in the process."""
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    yield
    torch.cuda.set_per_process_memory_fraction(1.0)


class Watch:
    """What the training loop hands the model, seen by two observers on the run's Acceleration: the device
    each batch comes from (before prepare_inputs moves it), and a forward pre-hook on the model that records,
    for every training forward of a prepared batch, the layout of the input and of the conv weights, the
    input's device and the autocast dtype in force."""

    def __init__(self, monkeypatch):
        self.sources: list[str] = []
        self.steps: list[dict] = []
        self._prepared = None
        prepare_inputs, prepare_model = Acceleration.prepare_inputs, Acceleration.prepare_model

        def watched_inputs(acceleration, inputs):
            self.sources.append(inputs.device.type)
            self._prepared = prepare_inputs(acceleration, inputs)
            return self._prepared

        def watched_model(acceleration, model):
            # A function, not a bound method: a deep copy of the model (the collapse check) shares it.
            model.register_forward_pre_hook(lambda module, args: self._see(module, args[0]))
            return prepare_model(acceleration, model)

        monkeypatch.setattr(Acceleration, "prepare_inputs", watched_inputs)
        monkeypatch.setattr(Acceleration, "prepare_model", watched_model)

    def _see(self, model: nn.Module, inputs: torch.Tensor) -> None:
        if not (model.training and inputs is self._prepared):
            return
        device = inputs.device.type
        self.steps.append({
            "device": device,
            "inputs_nhwc": inputs.is_contiguous(memory_format=torch.channels_last),
            "weights_nhwc": all(m.weight.is_contiguous(memory_format=torch.channels_last)
                                for m in model.modules() if isinstance(m, nn.Conv2d)),
            "autocast": torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None,
        })

    def seen(self, key: str) -> set:
        assert self.steps, "no training forward was seen"
        return {step[key] for step in self.steps}


def watched_run(monkeypatch, run_dir: Path, *settings: str) -> tuple[dict, Watch]:
    watch = Watch(monkeypatch)
    summary = run(quick_cfg(*CONV, *settings), run_dir)
    assert summary["status"] == "completed"
    return summary, watch


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[dict, Watch]:
    """fp32, eager, NCHW, batches made on the host: the run every faster setting is compared with."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return watched_run(monkeypatch, tmp_path_factory.mktemp("plain"), *PLAIN)


def same_run(fast: dict, plain: dict, tolerance: float) -> None:
    assert fast["achieved_sparsity"] == plain["achieved_sparsity"]
    assert abs(fast["test_acc"] - plain["test_acc"]) <= tolerance


def test_the_plain_run_trains_on_the_gpu_in_fp32_nchw_from_host_batches(plain):
    summary, watch = plain
    print(f"plain fp32: test_acc {summary['test_acc']:.4f}, cuda_peak_mb {summary['memory']['cuda_peak_mb']:.1f}")
    assert watch.seen("device") == {"cuda"}
    assert watch.seen("autocast") == {None}
    assert watch.seen("inputs_nhwc") == watch.seen("weights_nhwc") == {False}
    assert set(watch.sources) == {"cpu"}
    assert summary["test_acc"] > CHANCE + 0.3
    assert summary["memory"]["cuda_peak_mb"] > 0


def test_bf16_trains_under_bf16_autocast_above_chance(tmp_path, monkeypatch, plain):
    summary, watch = watched_run(monkeypatch, tmp_path / "bf16", *PLAIN, "hardware.precision=bf16")
    print(f"bf16: test_acc {summary['test_acc']:.4f} (fp32 {plain[0]['test_acc']:.4f}), "
          f"cuda_peak_mb {summary['memory']['cuda_peak_mb']:.1f}, train {summary['timings_s']['train']:.2f} s")
    assert watch.seen("autocast") == {torch.bfloat16}
    assert yaml.safe_load((tmp_path / "bf16" / "config.yaml").read_text())["hardware"]["precision"] == "bf16"
    assert summary["test_acc"] > CHANCE + 0.3
    assert summary["memory"]["cuda_peak_mb"] > 0
    same_run(summary, plain[0], 0.05)  # bf16 keeps 8 bits of mantissa


def test_channels_last_makes_weights_and_batches_nhwc_while_training(tmp_path, monkeypatch, plain):
    summary, watch = watched_run(monkeypatch, tmp_path / "nhwc", *PLAIN, "hardware.channels_last=true")
    print(f"channels_last: test_acc {summary['test_acc']:.4f}, {len(watch.steps)} training steps seen")
    assert watch.seen("inputs_nhwc") == watch.seen("weights_nhwc") == {True}
    same_run(summary, plain[0], 0.03)


def test_data_on_the_device_makes_every_batch_there(tmp_path, monkeypatch, plain):
    summary, watch = watched_run(monkeypatch, tmp_path / "on-device", *PLAIN, "hardware.data_on_device=true")
    print(f"data on device: test_acc {summary['test_acc']:.4f}, {len(watch.sources)} batches made on the GPU")
    assert watch.sources and set(watch.sources) == {"cuda"}  # training and evaluation
    same_run(summary, plain[0], 0.03)


def test_inductor_compiles_the_run_to_the_eager_result(tmp_path, plain):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    summary = run(quick_cfg(*CONV, *PLAIN, "hardware.compile=true"), tmp_path / "compiled")
    graphs = counters["stats"]["unique_graphs"]
    print(f"compile (inductor): test_acc {summary['test_acc']:.4f} (eager {plain[0]['test_acc']:.4f}), "
          f"{graphs} graphs, train {summary['timings_s']['train']:.1f} s")
    assert summary["status"] == "completed"  # every masked weight was checked to be zero after training
    assert graphs >= 1
    same_run(summary, plain[0], 0.03)


def test_the_memory_budget_holds_on_the_cuda_allocator(tmp_path):
    budget_mb = 128
    summary = run(quick_cfg(*ON_CUDA, *SLACK, "model=resnet20", "dataset.image_size=16", "trainer.batch_size=auto",
                            f"hardware.memory_budget_mb={budget_mb}"), tmp_path)
    memory = summary["memory"]
    print(f"budget {budget_mb} MB: batch {memory['batch_size']}, modelled {memory['model_peak_mb']:.1f} MB, "
          f"measured {memory['measured_peak_mb']:.1f} MB, cuda_peak_mb {memory['cuda_peak_mb']:.1f} MB")
    assert summary["status"] == "completed" and memory["within_budget"]
    assert memory["cuda_peak_mb"] <= budget_mb
    assert memory["cuda_peak_mb"] >= memory["static_mb"]  # the allocator's own peak, not a count
    assert memory["batch_size"] & (memory["batch_size"] - 1) == 0


def test_neuroflux_on_cuda_keeps_every_block_within_its_budget(tmp_path):
    budget_mb = 140
    summary = run(make_cfg(*ON_CUDA, *SLACK, "trainer=neuroflux", "dataset=digits", "dataset.image_size=16",
                           "model=vgg11", "logger=none", "trainer.epochs_per_block=2",
                           f"hardware.memory_budget_mb={budget_mb}"), tmp_path)
    blocks = summary["neuroflux"]["blocks"]
    for block in blocks:
        print(f"neuroflux at {budget_mb} MB, block {block['block']}: batch {block['batch_size']}, modelled "
              f"{block['modelled_peak_mb']:.1f} MB, cuda_peak_mb {block['cuda_peak_mb']:.1f} MB")
    print(f"neuroflux: test_acc {summary['test_acc']:.4f}")
    assert summary["status"] == "completed" and len(blocks) >= 2
    for block in blocks:
        assert block["cuda_peak_mb"] <= budget_mb
        assert block["cuda_peak_mb"] >= 0.5 * (block["counted_peak_mb"] - MARGIN_MB)  # the allocator saw the block
    assert summary["test_acc"] > CHANCE + 0.3


@needs_cuda(min_gpus=2)
def test_two_gpus_over_nccl_find_the_masks_of_one_and_write_one_run_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("NCCL_DEBUG", "INFO")  # each rank's NCCL writes a log of its own beside the runs
    monkeypatch.setenv("NCCL_DEBUG_FILE", str(tmp_path / "nccl.%p.log"))
    runs = tmp_path / "runs"
    runs.mkdir()
    args = ["dataset=digits", "model=lenet300", "logger=none", "sparsity=0.9", "method=snip", "trainer.epochs=2",
            *ON_CUDA]
    parallel = torchrun(*args, f"hydra.run.dir={runs / 'ddp'}", cwd=runs)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    single = run_cli(*args, f"hydra.run.dir={runs / 'one'}", cwd=runs)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp, one = read_json(runs / "ddp" / "summary.json"), read_json(runs / "one" / "summary.json")
    nccl_logs = [path.read_text() for path in tmp_path.glob("nccl.*.log")]
    print(f"NCCL DDP on 2 GPUs: test_acc {ddp['test_acc']:.4f} (one GPU {one['test_acc']:.4f}), "
          f"{len(nccl_logs)} NCCL logs")
    assert len(nccl_logs) >= 2 and all("NCCL INFO" in log for log in nccl_logs)
    # The engine checks after every mask change that both ranks hold the same masks, and stops the run if not.
    assert ddp["status"] == "completed"
    ddp_masks, one_masks = masks(runs / "ddp"), masks(runs / "one")
    assert all(torch.equal(ddp_masks[name], one_masks[name]) for name in one_masks)
    assert abs(ddp["test_acc"] - one["test_acc"]) <= 0.02
    assert sum(line.startswith("drive-run: snip on") for line in parallel.stdout.splitlines()) == 1
    assert sorted(path.name for path in runs.iterdir()) == ["ddp", "one"]  # rank 0 alone wrote, in its run


def test_all_tricks_train_vgg16_in_bf16_three_times_as_fast_as_the_dataloader_loop():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_throughput.py"), "--models", "vgg16",
                             "--precision", "bf16"], capture_output=True, text=True, cwd=REPO, timeout=540)
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    speed_ups = re.findall(r"^all tricks\s+[\d.]+\s+([\d.]+)x$", result.stdout, flags=re.MULTILINE)
    assert len(speed_ups) == 1, "no 'all tricks' row for VGG-16"
    assert float(speed_ups[0]) >= 3.0
