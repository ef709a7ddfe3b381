"""The GPU checks in one script, for a machine with CUDA (about 10 minutes on one recent GPU):

    python scripts/gpu_checks.py [--quick]

1. fp32 and bf16 runs of the same short job (VGG-11 on CIFAR-shaped digits): test accuracy, epoch time.
2. A memory budget: the allocator cap holds (cuda_peak_mb <= budget) and the measured peak is compared
   with the modelled one.
3. NeuroFlux under a tight budget: the budget holds on the allocator.
4. scripts/bench_throughput.py on VGG-16, ResNet-20 and ResNet-18 at batch 128, fp32 and bf16.

Every number comes from a run's summary.json or the benchmark's own output. On a machine without CUDA
it says so and exits 2, so it never reports CPU numbers as GPU ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SHORT = ["dataset=digits", "dataset.image_size=32", "dataset.channels=3", "model=vgg11", "method=snip",
         "sparsity=0.9", "trainer.epochs=3", "logger=none", "hardware.device=cuda"]
SCRIPTS = Path(__file__).resolve().parent


def drive_run(scratch: Path, name: str, *overrides: str) -> dict:
    run_dir = scratch / name
    result = subprocess.run([sys.executable, "-m", "drive_runner", *overrides, f"hydra.run.dir={run_dir}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"{name}: exit {result.returncode}: {result.stderr.strip().splitlines()[-1:]}")
        return {}
    return json.loads((run_dir / "summary.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the benchmark on VGG-16 alone")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_checks: no CUDA device here; nothing measured")
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for precision in ("fp32", "bf16"):
            summary = drive_run(scratch, precision, *SHORT, f"hardware.precision={precision}")
            if summary:
                print(f"{precision}: test_acc {summary['test_acc']:.4f}, train {summary['timings_s']['train']:.1f} s, "
                      f"cuda_peak_mb {summary['memory'].get('cuda_peak_mb', float('nan')):.1f}")
        budget = drive_run(scratch, "budget", *SHORT, "hardware.memory_budget_mb=300", "trainer.batch_size=auto")
        if budget:
            memory = budget["memory"]
            print(f"budget 300 MB: batch {memory['batch_size']}, modelled peak {memory['model_peak_mb']:.1f} MB, "
                  f"measured {memory['measured_peak_mb']:.1f} MB, cuda_peak_mb {memory['cuda_peak_mb']:.1f} MB, "
                  f"within budget: {memory['within_budget'] and memory['cuda_peak_mb'] <= 300}")
        neuroflux = drive_run(scratch, "neuroflux", *[o for o in SHORT if not o.startswith(("method", "sparsity"))],
                              "trainer=neuroflux", "hardware.memory_budget_mb=140")
        if neuroflux:
            for block in neuroflux["neuroflux"]["blocks"]:
                print(f"neuroflux at 140 MB, block {block['block']}: batch {block['batch_size']}, modelled peak "
                      f"{block['modelled_peak_mb']:.1f} MB, cuda_peak_mb {block.get('cuda_peak_mb', float('nan')):.1f}")
            print(f"neuroflux: test_acc {neuroflux['test_acc']:.4f}")
    models = ["vgg16"] if args.quick else ["vgg16", "resnet20", "resnet18"]
    for precision in ("fp32", "bf16"):
        subprocess.run([sys.executable, str(SCRIPTS / "bench_throughput.py"), "--models", *models,
                        "--precision", precision], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
