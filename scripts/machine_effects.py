"""What the machine changes: masks and trained accuracy under other CPU kernels and thread counts.

    python scripts/machine_effects.py masks --root ../data          # masks at initialisation, three machines
    python scripts/machine_effects.py accuracy --root ../data       # table jobs under two kernels, 3 seeds

A machine is stood in for by environment variables read when torch starts: ATEN_CPU_CAPABILITY=default
ONEDNN_MAX_CPU_ISA=SSE41 makes PyTorch and oneDNN use the kernels of an older CPU, whose sums round in
another order.

`masks` finds each scorer's mask at initialisation (SynFlow, DRIVE, SNIP, GraSP; float32 and float64
scoring) on LeNet-300-100 at 95/98% sparsity, LeNet-5-Caffe at 98/99% (MNIST batches, the same on every
machine) and, for SynFlow, VGG-16 at CIFAR-100 shape at density 1e-4. Each machine runs in a process of its
own: the default kernels with 1 thread, with 2 threads, and the stand-in with 1 thread. It prints, per case,
the share of kept weights two machines have in common and the largest difference in a layer's density.

`accuracy` runs table=snip_mnist's LeNet-300-100 jobs for those four scorers (quick recipe, 95/98%, seeds
0-2) as two sweeps at once, one under the default kernels and one under the stand-in, and prints each
kernel's test error, the paired difference with its 95% interval, the seeds' own spread, and how much of
the trained masks the two kernels share.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from drive_runner.report.intervals import half_width

STAND_IN = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
MACHINES = {"default kernels, 1 thread": ({}, 1), "default kernels, 2 threads": ({}, 2),
            "stand-in kernels, 1 thread": (STAND_IN, 1)}
SCORERS = ("synflow", "drive", "snip", "grasp")
PRECISIONS = ("float32", "float64")
# (model, input shape, classes, sparsity, scorers): the tables' settings, and SynFlow's hardest case
CASES = [("lenet300", (1, 28, 28), 10, 0.95, SCORERS), ("lenet300", (1, 28, 28), 10, 0.98, SCORERS),
         ("lenet5", (1, 28, 28), 10, 0.98, SCORERS), ("lenet5", (1, 28, 28), 10, 0.99, SCORERS),
         ("vgg16", (3, 32, 32), 100, 1 - 1e-4, ("synflow",))]


# ----------------------------------------------------------------------------- masks at initialisation
def score_all(out: Path, threads: int, dataset: list[str], seeds: int, models: list[str], wanted: list[str]) -> None:
    """In this process (its kernels fixed by its environment): every case's mask, saved to `out`."""
    import torch

    from drive_runner.cli.compose import compose_config
    from drive_runner.data import build_dataset
    from drive_runner.methods import prune
    from drive_runner.models import build_model

    torch.set_num_threads(threads)
    data = build_dataset(compose_config(["model=lenet300", *dataset]).dataset)
    batches = [next(data.train.batches(100, shuffle=True, generator=torch.Generator().manual_seed(i), augment=False))
               for i in range(10)]
    masks = {}
    for (model_name, shape, classes, sparsity, scorers), precision, seed in itertools.product(
            [case for case in CASES if case[0] in models], PRECISIONS, range(seeds)):
        cfg = compose_config([f"model={model_name}", "dataset=synthetic", f"dataset.image_size={shape[1]}",
                              f"dataset.channels={shape[0]}", f"dataset.num_classes={classes}"])
        for scorer in [s for s in scorers if s in wanted]:
            torch.manual_seed(seed)
            model = build_model(cfg.model, shape, classes).to(getattr(torch, precision))
            given = [(x.to(getattr(torch, precision)), y) for x, y in batches] if model_name != "vgg16" else []
            options = {"dtype": precision} if scorer in ("synflow", "drive") else {}
            found = prune(model, scorer, sparsity=sparsity, batches=given, seed=seed, input_shape=shape, **options)
            masks[(model_name, sparsity, scorer, precision, seed)] = {k: v.cpu() for k, v in found.items()}
        print(f"  {model_name} {sparsity:g} {precision} seed {seed}: done", file=sys.stderr, flush=True)
    torch.save(masks, out)


def overlap(a: dict, b: dict) -> tuple[float, float]:
    """The share of a's kept weights b keeps too, and the largest difference in a layer's density (points)."""
    kept = sum(int(mask.sum()) for mask in a.values())
    common = sum(int((a[name] & b[name]).sum()) for name in a)
    layer = max(abs(float(a[n].float().mean()) - float(b[n].float().mean())) for n in a)
    return common / kept, 100 * layer


def masks_report(args) -> None:
    import torch

    found = {}
    with tempfile.TemporaryDirectory() as scratch:
        for machine, (environment, threads) in MACHINES.items():
            out = Path(scratch, f"{len(found)}.pt")
            print(f"{machine}:", file=sys.stderr, flush=True)
            settings = {"threads": threads, "dataset": args.dataset, "seeds": args.seeds, "models": args.models,
                        "wanted": args.scorers}
            subprocess.run([sys.executable, __file__, "_score", str(out), json.dumps(settings)],
                           env={**os.environ, **environment}, check=True)
            found[machine] = torch.load(out, weights_only=False)
    reference, threads, stand_in = list(MACHINES)
    print(f"Masks at initialisation, {args.seeds} seed(s); mean over seeds (min) of the kept weights in common with "
          f"'{reference}', and the largest layer-density difference in points")
    print("| model | sparsity | scorer | precision | 2 threads: in common | stand-in: in common | stand-in: layer |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted({k[:4] for k in found[reference]}, key=str):
        rows = {machine: [overlap(found[reference][(*key, seed)], found[machine][(*key, seed)])
                          for seed in range(args.seeds)] for machine in (threads, stand_in)}
        cells = [f"{100 * statistics.fmean(o for o, _ in rows[m]):.2f}% ({100 * min(o for o, _ in rows[m]):.2f})"
                 for m in (threads, stand_in)]
        model, sparsity, scorer, precision = key
        print(f"| {model} | {sparsity:g} | {scorer} | {precision} | {cells[0]} | {cells[1]} | "
              f"{max(layer for _, layer in rows[stand_in]):.3f} |")


# ----------------------------------------------------------------------------- trained accuracy
def interval(differences: list[float]) -> str:
    mean, half = statistics.fmean(differences), half_width(differences)
    if half is None:
        return f"{mean:+.2f}"
    return f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"


def accuracy_report(args) -> None:
    import torch

    out = Path(args.out)
    sweeps = {"default": {}, "stand-in": STAND_IN}
    overrides = ["-m", "model=lenet300", "recipe=snip_mnist_quick", f"method={','.join(args.scorers)}",
                 f"sparsity={','.join(map(str, args.sparsities))}", f"seed={','.join(map(str, range(args.seeds)))}",
                 "logger=none", "hardware.threads=1", "hardware.device=cpu", *args.dataset, *args.overrides]
    drive_run = [sys.executable, "-c", "from drive_runner.cli.run import entry; entry()"]
    running = [subprocess.Popen([*drive_run, *overrides, f"hydra.sweep.dir={out / name}"],
                                env={**os.environ, **environment}, stdout=subprocess.DEVNULL)
               for name, environment in sweeps.items()]
    if any(process.wait() != 0 for process in running):
        sys.exit("machine_effects: a sweep did not complete; its directory says which job")
    runs = {name: {} for name in sweeps}
    for name in sweeps:
        for summary_path in (out / name).glob("*/summary.json"):
            summary = json.loads(summary_path.read_text())
            masks = torch.load(summary_path.parent / "checkpoints" / "masks.pt", weights_only=True)
            runs[name][(summary["method"], summary["target_sparsity"], summary["seed"])] = (summary, masks)
    print(f"LeNet-300-100 on {args.dataset[0].split('=')[-1]}, quick recipe, test error (%), mean ± std over seeds; "
          f"stand-in minus default, paired by seed, with its 95% interval")
    print("| scorer | sparsity | default | stand-in | difference | masks in common |")
    print("|---|---|---|---|---|---|")
    for scorer, sparsity in itertools.product(args.scorers, args.sparsities):
        seeds = [s for s in range(args.seeds) if (scorer, sparsity, s) in runs["default"]
                 and (scorer, sparsity, s) in runs["stand-in"]]
        errors = {name: [100 * (1 - runs[name][(scorer, sparsity, s)][0]["test_acc"]) for s in seeds] for name in sweeps}
        shared = [overlap(runs["default"][(scorer, sparsity, s)][1], runs["stand-in"][(scorer, sparsity, s)][1])[0]
                  for s in seeds]
        spread = {name: f"{statistics.fmean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}"
                  for name, v in errors.items()}
        differences = [b - a for a, b in zip(errors["default"], errors["stand-in"])]
        print(f"| {scorer} | {sparsity:g} | {spread['default']} | {spread['stand-in']} | {interval(differences)} | "
              f"{100 * statistics.fmean(shared):.2f}% |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_score":  # the child process of `masks`
        score_all(Path(sys.argv[2]), **json.loads(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("masks", "accuracy"))
    parser.add_argument("--root", help="the folder holding MNIST/raw (default: dataset=digits, for a quick check)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scorers", nargs="+", default=list(SCORERS))
    parser.add_argument("--models", nargs="+", default=sorted({case[0] for case in CASES}), help="for `masks`")
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.95, 0.98])
    parser.add_argument("--out", default="outputs/machine_effects", help="where `accuracy` writes its sweeps")
    parser.add_argument("overrides", nargs="*", help="more drive-run overrides for `accuracy` (e.g. trainer.epochs=2)")
    args = parser.parse_intermixed_args()
    args.dataset = ["dataset=mnist", f"dataset.root={args.root}"] if args.root else ["dataset=digits",
                                                                                      "dataset.image_size=28"]
    masks_report(args) if args.part == "masks" else accuracy_report(args)


if __name__ == "__main__":
    main()
