"""One job on several processes: who this process is, and the few collectives the runner needs.

A job becomes data-parallel when it is started by `torchrun --nproc_per_node=N -m drive_runner ...`
(RANK and WORLD_SIZE in the environment) or as a Slurm job with several tasks through submitit
(`hydra/launcher=slurm_ddp`). Every process runs the same pipeline in lockstep on its shard of each
batch; rank 0 alone writes the run directory, the checkpoints and W&B. Everything else (scoring,
selection, model surgery) runs on every rank on identical weights, and every mask change is taken from
rank 0 and checked to be identical everywhere. A single process is a world of one, where every call
here returns at once.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from drive_runner.errors import MaskError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    @property
    def shard(self) -> tuple[int, int] | None:
        """This process's rows of every batch (None: all of them)."""
        return (self.rank, self.size) if self.parallel else None


_world = World()
_control = None  # a gloo group for small host-side agreements (stop requests), whatever the device backend


def from_environment() -> World:
    """The world this process was started in: torchrun's variables, else a multi-task submitit job
    (whose variables are exported the way torchrun sets them), else a single process."""
    if "RANK" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR"):
        import submitit

        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return World()
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def start(world: World, device: torch.device) -> World:
    """Join the process group of `world` (NCCL on GPUs, gloo on the CPU); the world is then `current()`."""
    global _world, _control
    if world.parallel and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(minutes=30))
        _control = dist.new_group(backend="gloo") if device.type == "cuda" else dist.group.WORLD
    _world = world
    return world


def stop() -> None:
    global _world, _control
    if dist.is_initialized():
        dist.destroy_process_group()
    _world, _control = World(), None


def current() -> World:
    return _world


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any (a stop request seen by one process stops all at the
    same step). Host-side, so a GPU never waits for it."""
    if not _world.parallel:
        return flag
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_control)
    return bool(value.item())


def broadcast_from_main(tensors: list[torch.Tensor]) -> None:
    """Overwrite `tensors` in place with rank 0's values (bool tensors travel as uint8)."""
    if not _world.parallel:
        return
    for tensor in tensors:
        wire = tensor.to(torch.uint8) if tensor.dtype == torch.bool else tensor
        dist.broadcast(wire, src=0)
        if wire is not tensor:
            tensor.copy_(wire.bool())


def broadcast_value(value):
    """Rank 0's value of a small picklable object (a scalar a method fixes once, a decision)."""
    if not _world.parallel:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sums over all ranks (an evaluation's or an epoch's per-shard totals)."""
    if not _world.parallel:
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's BN statistics everywhere (each rank updated its own from its shard since the last step)."""
    broadcast_from_main([buffer for buffer in model.buffers() if buffer.is_floating_point()])


def masks_digest(masks: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(masks):
        digest.update(name.encode())
        digest.update(masks[name].detach().to("cpu", torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_identical_masks(masks: dict[str, torch.Tensor], when: str) -> None:
    """Every rank must hold exactly rank 0's masks; a difference means the ranks train different models."""
    if not _world.parallel:
        return
    digests = [None] * _world.size
    dist.all_gather_object(digests, masks_digest(masks), group=_control)
    differing = [rank for rank, digest in enumerate(digests) if digest != digests[0]]
    if differing:
        raise MaskError(f"{when}: the masks of rank(s) {', '.join(map(str, differing))} differ from rank 0's")


def barrier() -> None:
    if _world.parallel:
        dist.barrier(group=_control)
