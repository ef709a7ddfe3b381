"""NeuroFlux's activation cache: a trained block's outputs for every sample of a split, in sample order,
so the next block trains without running earlier blocks forward again (docs/neuroflux.md).

Kept in host memory, or in a memory-mapped file in the run directory when it is larger than the memory
budget (`trainer.cache`). Stored in half precision by default (`trainer.cache_precision`).
"""

from __future__ import annotations

from pathlib import Path

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


class ActivationCache:
    def __init__(self, num_samples: int, shape: tuple[int, ...], precision: str, path: Path | None = None):
        dtype = DTYPES[precision]
        numel = num_samples * int(torch.Size(shape).numel())
        if path is None:
            self.tensor = torch.empty((num_samples, *shape), dtype=dtype)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as stream:  # a file of the right size, then mapped
                stream.truncate(numel * dtype.itemsize)
            self.tensor = torch.from_file(str(path), shared=True, size=numel, dtype=dtype).view(num_samples, *shape)
        self.path = path

    @property
    def nbytes(self) -> int:
        return self.tensor.numel() * self.tensor.element_size()

    @property
    def location(self) -> str:
        return "disk" if self.path is not None else "memory"

    def write(self, start: int, values: torch.Tensor) -> None:
        self.tensor[start : start + len(values)] = values.detach().to("cpu", self.tensor.dtype)

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        return self.tensor[indices].float()
