"""The GPU checks, for a machine with CUDA: the tests marked `cuda` in tests/test_gpu.py.

    python scripts/gpu_checks.py [pytest options]       # = python -m pytest -m cuda tests/test_gpu.py -rA

bf16 autocast, channels_last, data on the device, torch.compile, the memory budget on the CUDA allocator,
NeuroFlux on CUDA, NCCL data parallelism (2 GPUs, skipped with one) and scripts/bench_throughput.py on
VGG-16 in bf16 (all tricks >= 3x the plain DataLoader loop). Each test prints what it measured; the exit
status is pytest's. On a machine without CUDA it says so and exits 2, so it never reports CPU numbers as
GPU ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_checks: no CUDA device here; nothing measured")
        return 2
    print(f"device: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()}), torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}", flush=True)
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_gpu.py", "-rA", *sys.argv[1:]]
    return subprocess.run(command, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
