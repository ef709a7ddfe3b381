"""One job of `hydra/launcher=processes`, in its own process: `python -m ... <job.in.pkl> <job.out.pkl>`."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import run_job, setup_globals
from omegaconf import open_dict

from drive_runner.cli.run import leave


def main(job_in: Path, job_out: Path) -> None:
    job = cloudpickle.loads(job_in.read_bytes())
    setup_globals()
    Singleton.set_state(job["singleton_state"])
    config = job["hydra_context"].config_loader.load_sweep_config(job["config"], job["overrides"])
    with open_dict(config):
        config.hydra.job.id = f"{config.hydra.job.name}_{job['number']}"
        config.hydra.job.num = job["number"]
    HydraConfig.instance().set_config(config)
    result = run_job(hydra_context=job["hydra_context"], task_function=job["task_function"], config=config,
                     job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    job_out.write_bytes(cloudpickle.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
    leave(0)
