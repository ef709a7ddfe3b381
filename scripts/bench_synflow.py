"""SynFlow's pruning loop against Synaptic-Flow's, and one DRIVE iteration in training steps, in one process.

    python scripts/bench_synflow.py --synaptic-flow /path/to/Synaptic-Flow   # VGG-16-bn, CIFAR-100 shape, 1e-4
    python scripts/bench_synflow.py --repeats 3                              # three rounds, order alternating

SynFlow: `--iterations` exponential steps (100) to `--density` (1e-4) on `--model` (vgg16, with BN) at
CIFAR-100 shape (3x32x32, 100 classes) on the CPU, timed four ways:
  - Synaptic-Flow (ganguli-lab/Synaptic-Flow on GitHub), its own code unchanged: its VGG-bn (or ResNet),
    Pruners.SynFlow and prune.prune_loop, global scope, as its main script calls them. Its Utils.load,
    the table from names to those objects, needs pandas for its datasets, so the objects are imported
    directly; a one-batch list stands in for its CIFAR-100 loader (SynFlow reads only the input shape),
    and a pass-through stands in for tqdm when that is not installed. Checkout: --synaptic-flow, else
    $SYNAPTIC_FLOW, else ../Synaptic-Flow beside this repository; without one its row is left out.
  - ours before this change: the same public `prune()` call with the code it had (scores from a float64
    deep copy of the model, selection by one float64 concatenation of every score and kthvalue).
  - ours now: `prune(model, "synflow", ...)` with its defaults (float32 scoring, per-tensor selection),
    and with method.dtype=float64 (the float64 reference, under the new selection).
Each row is one model built from the same seed. The table gives seconds, how many times faster than
Synaptic-Flow, and the overlap of the float32 mask with the float64 one (|kept32 & kept64| / kept).

DRIVE: one pruning iteration (score on a batch, select) with the default DRIVE options on the same
model, against one training step (forward, backward, SGD step) on the same batch, before and after.
Timings on shared cores are noisy: compare the ratios, and use --repeats for medians.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.machinery
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from drive_runner.errors import MaskError
from drive_runner.methods import build_method, prune
from drive_runner.methods import synflow as synflow_module
from drive_runner.models import build_model
from drive_runner.pruning import masks as mask_module
from drive_runner.pruning.masks import MaskEngine
from drive_runner.pruning.schedules import density_path

REPO = Path(__file__).resolve().parents[1]
# drive-runner's model name -> Synaptic-Flow's module and builder for the same architecture.
SYNAPTIC_FLOW_MODELS = {
    "vgg11": ("Models.lottery_vgg", "vgg11_bn"), "vgg13": ("Models.lottery_vgg", "vgg13_bn"),
    "vgg16": ("Models.lottery_vgg", "vgg16_bn"), "vgg19": ("Models.lottery_vgg", "vgg19_bn"),
    "resnet20": ("Models.lottery_resnet", "resnet20"), "resnet32": ("Models.lottery_resnet", "resnet32"),
    "resnet44": ("Models.lottery_resnet", "resnet44"), "resnet56": ("Models.lottery_resnet", "resnet56"),
}


# --------------------------------------------------------------------------- the code before this change
def previous_select_top(scores, masks, keep, generator):
    """Selection as it was: every score on the CPU in float64, one concatenation, kthvalue over all N."""
    names = list(masks)
    alive = torch.cat([masks[name].detach().reshape(-1).cpu() for name in names])
    values = torch.cat([scores[name].detach().reshape(-1).cpu().to(torch.float64) for name in names])
    if (alive & ~torch.isfinite(values)).any():
        raise MaskError("non-finite pruning scores")
    values.masked_fill_(~alive, float("-inf"))
    kept = torch.zeros(values.numel(), dtype=torch.bool)
    if keep:
        threshold = torch.kthvalue(values, values.numel() - keep + 1).values
        above = (values > threshold).nonzero().squeeze(1)
        tied = (values == threshold).nonzero().squeeze(1)
        kept[torch.cat([above, tied[torch.randperm(tied.numel(), generator=generator)[: keep - above.numel()]]])] = True
    parts = kept.split([masks[name].numel() for name in names])
    return {name: part.reshape(masks[name].shape).to(masks[name].device) for name, part in zip(names, parts)}


def previous_synflow_scores(model, names, batches=(), *, input_shape, generator=None, dtype=None):
    """SynFlow as it was: a deep copy of the model cast to float64, every state tensor made absolute."""
    probe = copy.deepcopy(model).to(dtype=torch.float64).eval()
    with torch.no_grad():
        for tensor in [*probe.parameters(), *probe.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    objective = probe(torch.ones((1, *input_shape), dtype=torch.float64)).sum()
    params = [dict(probe.named_parameters())[name] for name in names]
    grads = torch.autograd.grad(objective, params)
    return {name: (p.detach() * g).abs() for name, p, g in zip(names, params, grads)}


@contextlib.contextmanager
def previous_code():
    """The library with the selection and the SynFlow scorer it had before scoring moved to float32."""
    selection, synflow = mask_module.select_top, synflow_module.synflow_scores
    mask_module.select_top = previous_select_top
    synflow_module.synflow_scores = previous_synflow_scores
    try:
        yield
    finally:
        mask_module.select_top, synflow_module.synflow_scores = selection, synflow


# --------------------------------------------------------------------------- SynFlow
def build(model_name: str, input_shape, classes: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(OmegaConf.create({"name": model_name}), input_shape, classes)


def ours(args, previous: bool = False, dtype: str = "float32") -> tuple[float, dict]:
    model = build(args.model, args.input_shape, args.classes)
    with previous_code() if previous else contextlib.nullcontext():
        started = time.perf_counter()
        masks = prune(model, "synflow", round(1 - args.density, 12), input_shape=args.input_shape,
                      iterations=args.iterations, dtype=dtype)
        return time.perf_counter() - started, masks


def import_synaptic_flow(path: Path, model_name: str):
    """Synaptic-Flow's model builder, SynFlow pruner, parameter generator and prune loop, from its checkout."""
    sys.path.insert(0, str(path))
    if importlib.util.find_spec("tqdm") is None:  # its loop only wraps range() in a progress bar
        stand_in = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("tqdm", None))
        stand_in.tqdm = lambda iterable, **_: iterable
        sys.modules["tqdm"] = stand_in
    module, builder = SYNAPTIC_FLOW_MODELS[model_name]
    return (getattr(importlib.import_module(module), builder), importlib.import_module("Pruners.pruners").SynFlow,
            importlib.import_module("Utils.generator"), importlib.import_module("prune").prune_loop)


def synaptic_flow(args, code) -> tuple[float, str]:
    """Seconds of Synaptic-Flow's prune loop, run as its main script runs it (seed 1, eval mode, global)."""
    build_network, synflow, generator, prune_loop = code
    torch.manual_seed(1)
    model = build_network(args.input_shape, args.classes, False, False)
    pruner = synflow(generator.masked_parameters(model, False, False, False))
    loader = [(torch.ones((1, *args.input_shape)), torch.zeros(1, dtype=torch.long))]
    started = time.perf_counter()
    try:
        prune_loop(model, nn.CrossEntropyLoss(), pruner, loader, torch.device("cpu"), args.density,
                   "exponential", "global", args.iterations)
        note = ""
    except SystemExit:  # its survivor-count check gave up (tied scores at the cut)
        note = " (it stopped at its own survivor-count check)"
    return time.perf_counter() - started, note


def overlap(kept: dict, reference: dict) -> tuple[float, int]:
    count = sum(int(mask.sum()) for mask in reference.values())
    return sum(int((kept[name] & reference[name]).sum()) for name in reference) / max(count, 1), count


SYNAPTIC_FLOW = "Synaptic-Flow prune_loop (unchanged)"
BEFORE, NOW, NOW_FLOAT64 = "ours before (float64)", "ours now (float32)", "ours now, method.dtype=float64"


def synflow_table(args) -> None:
    runs = {BEFORE: lambda: ours(args, previous=True), NOW: lambda: ours(args),
            NOW_FLOAT64: lambda: ours(args, dtype="float64")}
    if args.model not in SYNAPTIC_FLOW_MODELS:
        print(f"Synaptic-Flow has no counterpart of {args.model} here; ours only.")
    elif not (args.synaptic_flow / "Pruners" / "pruners.py").is_file():
        print(f"Synaptic-Flow not found at {args.synaptic_flow}: clone ganguli-lab/Synaptic-Flow from GitHub there, "
              "or pass --synaptic-flow PATH or set SYNAPTIC_FLOW; ours only.")
    else:
        code = import_synaptic_flow(args.synaptic_flow, args.model)
        runs = {SYNAPTIC_FLOW: lambda: synaptic_flow(args, code), **runs}
    times = {label: [] for label in runs}
    results = {}
    for repeat in range(args.repeats):
        for label in list(runs) if repeat % 2 == 0 else list(runs)[::-1]:
            seconds, results[label] = runs[label]()
            times[label].append(seconds)
    medians = {label: statistics.median(values) for label, values in times.items()}

    total = MaskEngine(build(args.model, args.input_shape, args.classes)).total()
    print(f"\nSynFlow, {args.iterations} exponential iterations to density {args.density:g}: {args.model} "
          f"({total:,} prunable weights), input {'x'.join(map(str, args.input_shape))}, {args.classes} classes, "
          f"CPU, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'':40s} {'seconds':>9s} {'x faster than Synaptic-Flow':>28s}")
    for label, seconds in medians.items():
        ratio = f"{medians[SYNAPTIC_FLOW] / seconds:.2f}" if SYNAPTIC_FLOW in medians else "-"
        note = results[label] if label == SYNAPTIC_FLOW else ""
        print(f"{label:40s} {seconds:9.2f} {ratio:>28s}{note}")
    print(f"now against before: {medians[BEFORE] / medians[NOW]:.2f}x faster")
    share, kept = overlap(results[NOW], results[NOW_FLOAT64])
    print(f"mask overlap, float32 with float64: {share:.2%} of {kept:,} kept weights")
    share, _ = overlap(results[NOW_FLOAT64], results[BEFORE])
    print(f"mask overlap, float64 now with before: {share:.2%}")
    name, difference, total_variation = layer_agreement(results[NOW], results[NOW_FLOAT64])
    print(f"per-layer survivors, float32 against float64: largest difference {difference:,} weights ({name}); "
          f"the layers' shares of the kept weights differ by {total_variation:.2%} in all (total variation)")


def layer_agreement(kept: dict, reference: dict) -> tuple[str, int, float]:
    """Where two masks of one method differ in how many weights each layer keeps: the layer with the
    largest difference, that difference, and the total variation distance of the per-layer shares."""
    counts = {name: (int(kept[name].sum()), int(reference[name].sum())) for name in reference}
    name = max(counts, key=lambda layer: abs(counts[layer][0] - counts[layer][1]))
    totals = [max(sum(pair[i] for pair in counts.values()), 1) for i in (0, 1)]
    total_variation = sum(abs(a / totals[0] - b / totals[1]) for a, b in counts.values()) / 2
    return name, abs(counts[name][0] - counts[name][1]), total_variation


# --------------------------------------------------------------------------- DRIVE
def drive_iteration(args) -> None:
    """Median seconds of a training step and of a DRIVE iteration before and after, alternating."""
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn((args.drive_batch, *args.input_shape), generator=generator),
                torch.randint(0, args.classes, (args.drive_batch,), generator=generator))
               for _ in range(args.drive_iterations)]
    drive = build_method(OmegaConf.create({"name": "drive"}), OmegaConf.create({"name": "exponential"}))
    path = density_path("exponential", 0.1, 100)
    model = build(args.model, args.input_shape, args.classes)
    trained = MaskEngine(copy.deepcopy(model))
    optimizer = torch.optim.SGD(trained.model.parameters(), lr=0.01, momentum=0.9)
    trained.attach(optimizer)
    engines = {"before": MaskEngine(copy.deepcopy(model)), "now": MaskEngine(model)}
    times = {"training step": [], "before": [], "now": []}

    def train_step(batch):
        trained.model.train()
        optimizer.zero_grad()
        nn.functional.cross_entropy(trained.model(batch[0]), batch[1]).backward()
        optimizer.step()

    def iterate(label, step, batch):
        engine = engines[label]
        with previous_code() if label == "before" else contextlib.nullcontext():
            scores = drive.score(engine.model, engine.names, [batch], generator=None, input_shape=None)
            engine.prune_to_density(scores, path[step])

    train_step(batches[0])  # first-call allocations out of the timings
    for step, batch in enumerate(batches):
        order = [("training step", lambda: train_step(batch)), ("before", lambda: iterate("before", step, batch)),
                 ("now", lambda: iterate("now", step, batch))]
        for label, work in order if step % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            work()
            times[label].append(time.perf_counter() - started)
    train = statistics.median(times["training step"])
    print(f"\nDRIVE iteration (score + select, default options, batch {args.drive_batch}) on {args.model}, "
          f"median of {args.drive_iterations}; one training step {train * 1e3:.0f} ms")
    for label in ("before", "now"):
        seconds = statistics.median(times[label])
        print(f"DRIVE iteration {label:6s}: {seconds * 1e3:8.0f} ms = {seconds / train:.2f} training steps")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_path = os.environ.get("SYNAPTIC_FLOW") or str(REPO.parent / "Synaptic-Flow")
    parser.add_argument("--synaptic-flow", type=Path, default=Path(default_path), help="Synaptic-Flow checkout")
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--density", type=float, default=1e-4)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the SynFlow runs, order alternating")
    parser.add_argument("--drive-batch", type=int, default=128)
    parser.add_argument("--drive-iterations", type=int, default=5, help="DRIVE iterations and training steps timed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one: on shared cores a second "
                        "thread waiting for a busy core makes every time swing several-fold)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.input_shape = (3, args.image_size, args.image_size)
    synflow_table(args)
    drive_iteration(args)


if __name__ == "__main__":
    main(sys.argv[1:])
