"""`hydra/launcher=processes`: a sweep's jobs in processes of their own, `n_jobs` at a time.

joblib's workers share one pool: when one dies (killed, out of memory), loky breaks the pool, the other
running jobs stop and the rest never start. Here each job is a fresh Python process that this launcher only
waits for, so a job that dies loses only itself: the others finish, the sweep report lists it as not
finished, and relaunching the sweep continues just that job from its saved state. Ctrl-C is passed to the
running jobs (they save their state and stop) and no further job starts.
"""


import logging
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cloudpickle
from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass
class ProcessLauncherConf:
    _target_: str = "hydra_plugins.drive_runner_launcher.process_launcher.ProcessLauncher"
    n_jobs: int = 2  # jobs running at once


def register() -> None:
    ConfigStore.instance().store(group="hydra/launcher", name="processes", node=ProcessLauncherConf,
                                 provider="drive_runner")


class ProcessLauncher(Launcher):
    def __init__(self, n_jobs: int = 2):
        self.n_jobs = max(int(n_jobs), 1)
        self.config = self.hydra_context = self.task_function = None
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        singleton_state = Singleton.get_state()
        with tempfile.TemporaryDirectory(prefix=".launcher-", dir=sweep_dir) as scratch:
            pool = ThreadPoolExecutor(max_workers=self.n_jobs)
            futures = []
            for offset, overrides in enumerate(job_overrides):
                number = initial_job_idx + offset
                log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
                futures.append(pool.submit(self._run_job, number, list(overrides), singleton_state, Path(scratch)))
            try:
                results = [future.result() for future in futures]
            except KeyboardInterrupt:
                self._stop_all(pool)
                raise
            pool.shutdown()
        return results

    def _stop_all(self, pool: ThreadPoolExecutor) -> None:
        """Ctrl-C: no job starts any more, the running ones get SIGINT (they save and stop) and are waited for."""
        self._stopping = True
        pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = list(self._running)
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        pool.shutdown(wait=True)  # the running jobs have saved their state and ended

    def _run_job(self, number: int, overrides: list[str], singleton_state, scratch: Path) -> JobReturn:
        if self._stopping:
            return _not_finished(overrides, "the sweep was interrupted before this job started")
        job_in, job_out = scratch / f"{number}.in.pkl", scratch / f"{number}.out.pkl"
        job_in.write_bytes(cloudpickle.dumps({
            "hydra_context": self.hydra_context, "task_function": self.task_function, "config": self.config,
            "overrides": overrides, "number": number, "singleton_state": singleton_state,
        }))
        process = subprocess.Popen([sys.executable, "-m", "hydra_plugins.drive_runner_launcher.job", str(job_in),
                                    str(job_out)])
        with self._lock:
            self._running.add(process)
        code = process.wait()
        with self._lock:
            self._running.discard(process)
        if code == 0 and job_out.exists():
            return cloudpickle.loads(job_out.read_bytes())
        if self._stopping:  # interrupted with the sweep: its run directory says so
            return _not_finished(overrides, "the sweep was interrupted")
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        print(f"drive-run: job {number} ({' '.join(filter_overrides(overrides))}) {how}; the other jobs go on",
              file=sys.stderr, flush=True)
        return _not_finished(overrides, f"the job's process {how}")


def _not_finished(overrides: list[str], reason: str) -> JobReturn:
    """A job that left no result. Hydra's sweeper re-raises a FAILED job's error and would end the sweep
    there, so it is returned as done with no value: its run directory says what happened, and the sweep
    report (and the exit status) count it as not completed."""
    log.warning(reason)
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)
