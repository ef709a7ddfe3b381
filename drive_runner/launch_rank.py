"""This process's rank in a data-parallel job, read from its launcher's environment without importing
torch: the command line and Hydra's output settings need it before torch loads."""

from __future__ import annotations

import os


def environment_rank() -> int:
    """torchrun's RANK, else the global rank of a submitit task (Slurm or local), else 0."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if os.environ.get("SUBMITIT_EXECUTOR"):
        import submitit

        return submitit.JobEnvironment().global_rank
    return 0


def on_main_rank(value, otherwise=None):
    """`value` in rank 0 of a job, `otherwise` in its other ranks (Hydra resolver `${on_main_rank:a,b}`)."""
    return value if environment_rank() == 0 else otherwise
