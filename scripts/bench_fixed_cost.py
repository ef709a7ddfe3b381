"""What a job costs before it does any work: whole commands timed from outside, side by side.

    python scripts/bench_fixed_cost.py                  # 5 rounds, and a sweep of 8 jobs
    python scripts/bench_fixed_cost.py --runs 9 --sweep 0

Each round runs, in turn: a bare `python -c "import torch"`; the same with `torch._dynamo`, which
torch.optim imports on the first optimizer any training job builds (the floor for a job that trains); a job
that does no work (`dataset=digits model=lenet300 method=random trainer.epochs=0 logger=none`, in a new
directory each time); and `drive-run --help`. A first round, not counted, writes Python's bytecode and the
digits cache, as a user's first job does. It prints each command's median, minimum and maximum wall-clock
and peak memory (the process's own accounting) and the job's median ratio to the bare import, round by
round. With --sweep N it then runs N no-op jobs as one `-m` sweep (Hydra's basic launcher: one process)
and prints what each job after the first adds.

The commands run as a user's shell would run them: PYTHONDONTWRITEBYTECODE is dropped from their
environment, so Python reuses the bytecode it wrote (without it every module is compiled at every start).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_OP_JOB = ["dataset=digits", "model=lenet300", "method=random", "trainer.epochs=0", "logger=none"]
DRIVE_RUN = ["-c", "from drive_runner.cli.run import entry; entry()"]  # the console script, on this Python


def timed(arguments: list[str], environment: dict) -> tuple[float, float]:
    """Wall-clock seconds and peak resident MiB of one command (exit status 0 required)."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, *arguments], env=environment, stdout=subprocess.DEVNULL,
                                   stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)  # the process's own peak memory, which Popen.wait drops
        seconds = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            errors.seek(0)
            sys.exit(f"{' '.join(arguments)} exited with {code}:\n{errors.read().decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def describe(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, max {max(seconds):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="counted rounds (default 5)")
    parser.add_argument("--sweep", type=int, default=8, help="jobs in the sweep measured after (0: none)")
    args = parser.parse_args()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as scratch:
        environment.setdefault("DRIVE_RUNNER_CACHE", str(Path(scratch, "cache")))
        commands = {
            "python -c 'import torch'": lambda n: ["-c", "import torch"],
            "python -c 'import torch, torch._dynamo'": lambda n: ["-c", "import torch, torch._dynamo"],
            "no-op job": lambda n: [*DRIVE_RUN, *NO_OP_JOB, f"hydra.run.dir={scratch}/job-{n}"],
            "drive-run --help": lambda n: [*DRIVE_RUN, "--help"],
        }
        measured: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for round_number in range(args.runs + 1):
            for name, command in commands.items():
                result = timed(command(round_number), environment)
                if round_number:  # the first round writes bytecode and the digits cache
                    measured[name].append(result)
        print(f"{args.runs} rounds, each command once per round in turn; wall-clock and peak memory per command")
        for name, results in measured.items():
            print(f"  {name:40s} {describe([s for s, _ in results])}, peak {max(m for _, m in results):.0f} MiB")
        ratios = [job / bare for (job, _), (bare, _) in zip(measured["no-op job"], measured[next(iter(commands))])]
        print(f"no-op job / bare import torch, round by round: median {statistics.median(ratios):.2f}x")
        if args.sweep > 1:
            single = statistics.median(s for s, _ in measured["no-op job"])
            seeds = ",".join(str(seed) for seed in range(args.sweep))
            sweep, _ = timed([*DRIVE_RUN, "-m", *NO_OP_JOB, f"seed={seeds}", f"hydra.sweep.dir={scratch}/sweep"],
                             environment)
            print(f"sweep of {args.sweep} no-op jobs (-m, one process): {sweep:.2f} s; each job after the first adds "
                  f"{(sweep - single) / (args.sweep - 1):.2f} s")


if __name__ == "__main__":
    main()
