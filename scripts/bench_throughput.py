"""Training throughput: drive-run's training step against the plain PyTorch loop the reference repositories use.

    python scripts/bench_throughput.py                         # CPU: VGG-16, ResNet-20, ResNet-18 at CIFAR shape
    python scripts/bench_throughput.py --models vgg16 --batch 128 --images 8192 --repeats 3   # a GPU
    python scripts/bench_throughput.py --mask-overhead --models resnet20 vgg16   # the mask engine's cost alone

Synthetic CIFAR-shaped data (3x32x32 uint8, 10 classes), the same model, batch, optimizer and precision
on both sides. The reference is a torchvision DataLoader over PIL images with per-image RandomCrop(32,
padding=4), RandomHorizontalFlip, ToTensor and Normalize, feeding a loop that moves every batch to the
device. drive-run's side is its TrainingSession on its in-memory batch source (crop, flip and
normalisation of whole batches; on a GPU the images live there). Rows, each timed over the same images
and repeated in alternation so they share the machine's load (the median is printed):

  plain loop + DataLoader        the reference
  plain loop + in-memory source  the data path in training (goal: faster than the DataLoader)
  session, no masks              drive-run's loop without the mask engine
  session, 90% sparse            with the mask engine (goal: <= 1.03x the time of the row above)
  + channels_last, + bf16, + compile, + data on device: one trick at a time on the sparse session
  all tricks                     everything that applies here (goal on a GPU: >= 3x the reference, VGG-16, bf16)

--mask-overhead times only the two session rows, in pairs whose order alternates, until the 95% interval of
the time ratio (sparse over unmasked, the geometric mean of the pairs) is narrower than +-1% or
--max-rounds pairs are timed, and says whether the ratio is within 1.03.

Denormal floats are flushed to zero on both sides (see main). A first line times the two data paths alone, without a model. It ends with the projected wall-clock of `drive-run method=drive sparsity=0.9` (VGG-16, CIFAR-10,
160 epochs of 50,000 images) at the best measured rate. First steps (cuDNN autotuning, compilation)
are run before timing.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from drive_runner.cli.compose import compose_config
from drive_runner.data.bundle import DataBundle
from drive_runner.data.in_memory import InMemorySource
from drive_runner.models import build_model
from drive_runner.report.intervals import half_width
from drive_runner.pruning.masks import MaskEngine
from drive_runner.train.acceleration import Acceleration
from drive_runner.train.loop import TrainingSession

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
SHAPE, CLASSES = (3, 32, 32), 10
LR = 0.001  # small: on random labels a larger step can diverge, and the session stops a diverged run
PAPER_RUN = {"epochs": 160, "images": 50_000}  # drive-run method=drive sparsity=0.9: VGG-16 on CIFAR-10


def synthetic_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, CLASSES, count)


def reference_loader(images: np.ndarray, labels: np.ndarray, batch: int, workers: int, pin: bool):
    """How the reference repositories feed CIFAR: PIL images through per-image torchvision transforms."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    class Images(Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, index):
            return transform(Image.fromarray(images[index])), int(labels[index])

    return DataLoader(Images(), batch_size=batch, shuffle=True, num_workers=workers, pin_memory=pin,
                      drop_last=True, persistent_workers=workers > 0)


def build(name: str, device: torch.device):
    torch.manual_seed(0)
    cfg = compose_config([f"model={name}"], ["hardware.device=cpu"])
    return build_model(cfg.model, SHAPE, CLASSES).to(device), cfg


def plain_epoch(model, optimizer, batches, device, precision: str) -> int:
    """The reference loop: every batch copied to the device, the loss read back at the end of the epoch."""
    model.train()
    seen, last = 0, None
    for inputs, targets in batches:
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with Acceleration(device, precision).autocast():
            loss = F.cross_entropy(model(inputs).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen, last = seen + len(targets), loss
    float(last.detach())  # wait for the device
    return seen


class Row:
    """One configuration under test: a callable that trains one epoch over the images and returns how many."""

    def __init__(self, label: str, epoch):
        self.label, self.epoch, self.rates = label, epoch, []

    def measure(self, device) -> None:
        started = time.perf_counter()
        seen = self.epoch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.rates.append(seen / (time.perf_counter() - started))

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


def rows_for(name: str, args, device: torch.device) -> list[Row]:
    images, labels = synthetic_images(args.images)
    stored = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    source = InMemorySource(stored, torch.from_numpy(labels), MEAN, STD, crop_padding=4)
    probe = InMemorySource(stored[:1], torch.from_numpy(labels[:1]), MEAN, STD)  # the epoch-end evaluation, ~free
    bundle = DataBundle("synthetic-cifar", SHAPE, CLASSES, source, probe)
    precision = args.precision
    rows = []

    def plain(batches_of):
        model, cfg = build(name, device)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
        return lambda: plain_epoch(model, optimizer, batches_of(), device, precision)

    loader = reference_loader(images, labels, args.batch, args.workers, device.type == "cuda")
    rows.append(Row("plain loop + DataLoader", plain(lambda: loader)))
    rows.append(Row("plain loop + in-memory source", plain(
        lambda: source.batches(args.batch, shuffle=True, generator=torch.Generator().manual_seed(0), augment=True,
                               drop_last=True))))

    def session(sparse: bool, **tricks):
        model, cfg = build(name, device)
        trainer = OmegaConf.merge(cfg.trainer, {"lr": LR, "batch_size": args.batch, "lr_schedule": "constant",
                                                "weight_decay": 1e-4, "momentum": 0.9})
        acceleration = Acceleration(device, tricks.get("precision", precision), tricks.get("channels_last", False),
                                    tricks.get("compile_backend"), tricks.get("data_on_device", False))
        acceleration.prepare_model(model)
        data = bundle.to(device) if acceleration.data_on_device else bundle
        engine = None
        if sparse:
            engine = MaskEngine(model, seed=0)
            engine.prune_to_density({t.name: torch.rand_like(t.param) for t in engine.targets}, 0.1)
        run = TrainingSession(model, data, trainer, device=device, precision=acceleration.precision, seed=0,
                              engine=engine, acceleration=acceleration)

        def epoch():
            run.train_until(run.epoch + 1, "bench")
            return args.images

        return epoch

    rows.append(Row("session, no masks", session(False)))
    rows.append(Row("session, 90% sparse", session(True)))
    tricks = {"+ channels_last": {"channels_last": True}, "+ bf16": {"precision": "bf16"}}
    if args.compile:
        tricks["+ compile"] = {"compile_backend": args.compile}
    if device.type == "cuda":
        tricks["+ data on device"] = {"data_on_device": True}
    for label, trick in tricks.items():
        rows.append(Row(label, session(True, **trick)))
    everything = {key: value for trick in tricks.values() for key, value in trick.items()}
    if len(tricks) > 1:
        rows.append(Row("all tricks", session(True, **everything)))
    return rows


def data_alone(args, device: torch.device) -> None:
    """Batches per second with no model: the DataLoader against the in-memory source (on the device when
    there is a GPU), each epoch ending with its last batch on the device."""
    images, labels = synthetic_images(args.images)
    stored = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    source = InMemorySource(stored, torch.from_numpy(labels), MEAN, STD, crop_padding=4)
    source = source.to(device) if device.type == "cuda" else source
    loader = reference_loader(images, labels, args.batch, args.workers, device.type == "cuda")

    def epoch(batches):
        def go():
            last = None
            for inputs, _ in batches():
                last = inputs.to(device, non_blocking=True)
            float(last[0, 0, 0, 0])
            return args.images
        return go

    rows = [Row("DataLoader", epoch(lambda: loader)),
            Row("in-memory source", epoch(lambda: source.batches(args.batch, shuffle=True, augment=True,
                                                                generator=torch.Generator().manual_seed(0))))]
    for row in rows:
        row.epoch()
    for _ in range(args.repeats):
        for row in rows:
            row.measure(device)
    print(f"data alone (no model): DataLoader {rows[0].rate:,.0f} images/s, in-memory source {rows[1].rate:,.0f} "
          f"images/s ({rows[1].rate / rows[0].rate:.1f}x)")


def mask_overhead(name: str, args, device: torch.device) -> None:
    """The sparse session's epoch time over the unmasked session's, paired: a pair shares the machine's
    load of its moment, so the ratio's interval narrows where single timings scatter by +-10%."""
    rows = rows_for(name, args, device)
    unmasked, sparse = rows[2], rows[3]
    for row in (unmasked, sparse):
        row.epoch()
    logs, half = [], None
    while len(logs) < args.max_rounds:
        for row in (unmasked, sparse) if len(logs) % 2 == 0 else (sparse, unmasked):
            row.measure(device)
        logs.append(math.log(unmasked.rates[-1] / sparse.rates[-1]))
        half = half_width(logs)
        if len(logs) >= args.min_rounds and math.expm1(half) < 0.01:
            break
    ratio, low, high = (math.exp(statistics.fmean(logs) + shift) for shift in (0, -half, half))
    verdict = "within 1.03" if high <= 1.03 else "over 1.03" if low > 1.03 else "undecided at 1.03"
    print(f"{name}: mask-engine time ratio {ratio:.4f}x, 95% interval [{low:.4f}, {high:.4f}] "
          f"(+-{100 * math.expm1(half):.2f}%) over {len(logs)} pairs of {args.images} images: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet20", "resnet18"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--images", type=int, default=None, help="per epoch (default: 1024 on CPU, 16384 on a GPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference")
    parser.add_argument("--compile", default=None, help="a torch.compile backend to time (default: inductor on "
                                                        "a GPU, none on the CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mask-overhead", action="store_true", help="time only the mask engine's overhead, "
                                                                      "to a +-1%% interval")
    parser.add_argument("--min-rounds", type=int, default=10, help="with --mask-overhead: pairs at least")
    parser.add_argument("--max-rounds", type=int, default=200, help="with --mask-overhead: pairs at most")
    args = parser.parse_args()
    device = torch.device(args.device)
    # Both sides alike: on random images and labels the weights drift into denormal floats, which made x86
    # cores up to 3x slower at random from one row to the next (a GPU computes them at full speed).
    torch.set_flush_denormal(True)
    args.images = args.images or (16384 if device.type == "cuda" else 1024)
    args.images -= args.images % args.batch  # whole batches on both sides
    if args.compile is None and device.type == "cuda" and shutil.which("cc"):
        args.compile = "inductor"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"batch {args.batch}, {args.images} images per epoch, {args.precision}, median of {args.repeats}")
    if args.mask_overhead:
        for name in args.models:
            mask_overhead(name, args, device)
        return
    data_alone(args, device)
    best = {}
    for name in args.models:
        rows = rows_for(name, args, device)
        for row in rows:  # warm-up: workers start, cuDNN autotunes, compilation
            row.epoch()
        for _ in range(args.repeats):
            for row in rows:
                row.measure(device)
        reference, unmasked = rows[0].rate, rows[2].rate
        print(f"\n{name}")
        print(f"{'':32s} {'images/s':>10s} {'vs reference':>13s}")
        for row in rows:
            print(f"{row.label:32s} {row.rate:10.1f} {row.rate / reference:12.2f}x")
        sparse = rows[3].rate
        print(f"mask-engine overhead: {unmasked / sparse:.3f}x the time of the session without masks (goal <= 1.03)")
        print(f"data path: in-memory source {rows[1].rate / reference:.2f}x the DataLoader's images/s (goal > 1)")
        best[name] = max(row.rate for row in rows[3:])
    if "vgg16" in best:
        seconds = PAPER_RUN["epochs"] * PAPER_RUN["images"] / best["vgg16"]
        print(f"\nprojected drive-run method=drive sparsity=0.9 (VGG-16, CIFAR-10, {PAPER_RUN['epochs']} epochs): "
              f"{seconds / 3600:.2f} h of training at {best['vgg16']:.0f} images/s (evaluation and pruning not included)")


if __name__ == "__main__":
    main()
