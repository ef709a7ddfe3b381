"""Runs that survive: SIGKILL anywhere and relaunch, stop signals, attempts kept apart, resume policies.

The killed runs are real `drive-run` processes, killed with SIGKILL when their metrics.jsonl shows they
reached the point under test; the relaunch is the same command into the same directory. Every resumed
run must end exactly where an uninterrupted one ends (one thread on the CPU, so the kernels are
deterministic): the same masks, the same test accuracy, and each epoch in metrics.jsonl once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from drive_runner.pipeline import run
from tests.conftest import DRIVE_RUN, quick_cfg, read_json, run_cli

BASE = ["dataset=digits", "model=lenet300", "logger=none", "hardware.device=cpu", "hardware.threads=1"]
DRIVE = [*BASE, "method=drive", "method.warmup_epochs=3", "trainer.epochs=6", "method.iterations=30"]
IMP = [*BASE, "method=imp", "sparsity=0.75", "schedule.fraction=0.5", "trainer.epochs=2", "method.control=reinit"]
PRUNETRAIN = [*BASE, "method=prunetrain", "model=resnet20", "dataset.image_size=16", "trainer.epochs=4",
              "method.interval=2", "method.penalty_ratio=0.9", "method.threshold=0.02"]
VOLATILE = ("timings_s", "run_dir", "attempt", "epoch_time_reduction")  # wall-clock and where: what two runs of one job may differ in


def records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # a line being written is left out


def epochs(run_dir: Path) -> list[tuple[str, int]]:
    return [(r["phase"], r["epoch"]) for r in records(run_dir) if r["event"] == "epoch"]


def kill_when(args: list[str], run_dir: Path, reached, cwd: Path, timeout: float = 240) -> None:
    """Start the command, SIGKILL it as soon as `reached(records)` holds, and wait for it to die."""
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    process = subprocess.Popen([str(DRIVE_RUN), *args, f"hydra.run.dir={run_dir}"], cwd=cwd, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not reached(records(run_dir)):
            assert process.poll() is None, "the run ended before it reached the point under test"
            assert time.monotonic() < deadline, "the run never reached the point under test"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)


def relaunch(args: list[str], run_dir: Path, cwd: Path) -> dict:
    result = run_cli(*args, f"hydra.run.dir={run_dir}", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return read_json(run_dir / "summary.json")


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in VOLATILE and k != "overrides"}


def saved_phase(run_dir: Path) -> list[str]:
    """The phases the saved training state had entered when the run was killed."""
    state = torch.load(run_dir / "checkpoints" / "state.pt", weights_only=True)
    return state["progress"]["entered"]


def assert_same_run(resumed_dir: Path, reference_dir: Path) -> None:
    resumed, reference = read_json(resumed_dir / "summary.json"), read_json(reference_dir / "summary.json")
    assert comparable(resumed) == comparable(reference)
    assert resumed["attempt"] == 2
    masks = torch.load(resumed_dir / "checkpoints" / "masks.pt", weights_only=True)
    expected = torch.load(reference_dir / "checkpoints" / "masks.pt", weights_only=True)
    assert masks.keys() == expected.keys() and all(torch.equal(masks[k], expected[k]) for k in masks)
    assert epochs(resumed_dir) == epochs(reference_dir)  # each epoch once, in order
    assert len(set(epochs(resumed_dir))) == len(epochs(resumed_dir))
    assert not (resumed_dir / "checkpoints" / "state.pt").exists()  # removed once the run completed
    assert (resumed_dir / "attempts" / "1" / "metrics.jsonl").exists()  # the killed attempt, kept apart


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs of each job, computed once."""
    root = tmp_path_factory.mktemp("references")
    done = {}

    def reference(name: str, args: list[str]) -> Path:
        if name not in done:
            run_dir = root / name
            relaunch(args, run_dir, root)
            done[name] = run_dir
        return done[name]

    return reference


def logged(phase: str, epoch: int):
    """The epoch's record is there, so the state saved at the end of the epoch before it is too."""
    return lambda rs: any(r["event"] == "epoch" and (r["phase"], r["epoch"]) == (phase, epoch) for r in rs)


@pytest.mark.parametrize("phase, reached, saved_in", [
    # Warm-up and pruning take the same path through the saved state as sparse training does; they run
    # in the slow suite (`make test-slow`) to keep `make test` within its budget.
    pytest.param("warmup", logged("warmup", 2), {"warmup"}, marks=pytest.mark.slow),
    pytest.param("prune", lambda rs: sum(r["event"] == "prune_step" for r in rs) >= 5, {"warmup", "prune"},
                 marks=pytest.mark.slow),
    ("train", logged("train", 5), {"train"}),
])
def test_drive_killed_in_any_phase_resumes_to_the_uninterrupted_result(tmp_path: Path, references, phase, reached,
                                                                        saved_in):
    run_dir = tmp_path / "run"
    kill_when(DRIVE, run_dir, reached, tmp_path)
    assert saved_phase(run_dir)[-1] in saved_in
    relaunch(DRIVE, run_dir, tmp_path)
    assert_same_run(run_dir, references("drive", DRIVE))


def test_imp_killed_between_levels_resumes_to_the_uninterrupted_result(tmp_path: Path, references):
    run_dir = tmp_path / "run"
    kill_when(IMP, run_dir, lambda rs: any(r["event"] == "prune_step" for r in rs), tmp_path)
    relaunch(IMP, run_dir, tmp_path)
    assert_same_run(run_dir, references("imp", IMP))
    controls = [r for r in records(run_dir) if r["event"] == "imp_control"]
    assert [c["level"] for c in controls] == [1, 2]


@pytest.mark.slow  # 40 s of ResNet-20 training in three processes
def test_prunetrain_killed_after_a_reconfiguration_resumes_on_the_shrunken_model(tmp_path: Path, references):
    run_dir = tmp_path / "run"
    kill_when(PRUNETRAIN, run_dir, logged("train", 3), tmp_path)  # reconfigured after epoch 2
    state = torch.load(run_dir / "checkpoints" / "state.pt", weights_only=True)
    assert state["session"]["epoch"] >= 2 and state["method"]["reconfigurations"]
    assert state["model"]["architecture"]["layers"] != state["method"]["initial_widths"]
    relaunch(PRUNETRAIN, run_dir, tmp_path)
    reference = references("prunetrain", PRUNETRAIN)
    assert_same_run(run_dir, reference)
    resumed = read_json(run_dir / "summary.json")
    assert sum(resumed["channels_final"].values()) < sum(resumed["channels_initial"].values())


class _Crash(BaseException):
    """Stands for the process dying: nothing the run does can catch it."""


def test_a_crash_during_evaluation_resumes_from_the_last_epoch(tmp_path: Path, monkeypatch):
    cfg = quick_cfg("method=magnitude", "trainer.epochs=2")
    reference = run(cfg, tmp_path / "reference")
    import drive_runner.runners.backprop as pipeline  # where the final evaluation runs

    real_evaluate = pipeline.evaluate

    def crash(*args, **kwargs):
        raise _Crash()

    monkeypatch.setattr(pipeline, "evaluate", crash)
    with pytest.raises(_Crash):
        run(cfg, tmp_path / "run")
    assert read_json(tmp_path / "run" / "summary.json")["status"] == "failed"
    monkeypatch.setattr(pipeline, "evaluate", real_evaluate)
    resumed = run(cfg, tmp_path / "run")
    assert resumed["status"] == "completed" and resumed["attempt"] == 2
    assert comparable(resumed) == comparable(reference)
    assert epochs(tmp_path / "run") == epochs(tmp_path / "reference")
    assert read_json(tmp_path / "run" / "attempts" / "1" / "summary.json")["status"] == "failed"


def test_sigterm_mid_epoch_saves_stops_with_one_line_and_resumes_exactly(tmp_path: Path, references):
    run_dir = tmp_path / "run"
    process = subprocess.Popen([str(DRIVE_RUN), *DRIVE, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "WANDB_MODE": "offline"})
    while not any(r["event"] == "epoch" and r["phase"] == "train" for r in records(run_dir)):
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143
    assert "Traceback" not in err and "Traceback" not in out
    assert "interrupted by SIGTERM" in out
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    relaunch(DRIVE, run_dir, tmp_path)
    assert_same_run(run_dir, references("drive", DRIVE))


def test_ctrl_c_on_a_run_is_one_line_and_exit_130(tmp_path: Path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen([str(DRIVE_RUN), *DRIVE, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "WANDB_MODE": "offline"})
    while not any(r["event"] == "epoch" for r in records(run_dir)):
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err + out
    assert err.strip().splitlines() == ["drive-run: interrupted by SIGINT; the same command continues from the saved state"]
    assert read_json(run_dir / "summary.json")["status"] == "interrupted"


def test_ctrl_c_on_a_sweep_stops_launching_and_still_reports(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *DRIVE, "seed=0,1,2", f"hydra.sweep.dir={sweep_dir}"]
    process = subprocess.Popen([str(DRIVE_RUN), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    second_job_started = lambda: sum(1 for _ in sweep_dir.glob("*/metrics.jsonl")) >= 2  # noqa: E731
    while not second_job_started():
        assert process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err + out
    assert err.strip().splitlines()[-1].startswith("drive-run: interrupted by SIGINT; 1 of 2 jobs started have finished")
    sweep = read_json(sweep_dir / "sweep_summary.json")
    assert sorted(job["status"] for job in sweep["jobs"]) == ["completed", "interrupted"]
    assert len(list(sweep_dir.glob("*/metrics.jsonl"))) == 2  # the third job never started


def test_relaunching_a_finished_sweep_runs_nothing_and_a_missing_job_runs_alone(tmp_path: Path):
    args = ["-m", *BASE, "method=magnitude", "trainer.epochs=1", "seed=0,1", "sparsity=0.5,0.9"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0
    assert "all 4 jobs of this sweep are already done" in again.stdout
    job_dirs = sorted(p.parent for p in tmp_path.glob("outputs/sweeps/*/*/summary.json"))
    assert len(job_dirs) == 4
    finished_at = {d: (d / "summary.json").stat().st_mtime_ns for d in job_dirs}
    (job_dirs[1] / "summary.json").unlink()
    third = run_cli(*args, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert "sweep of 4 jobs" in third.stdout and "3 already done, skipped" in third.stdout
    assert (job_dirs[1] / "summary.json").exists()
    assert all((d / "summary.json").stat().st_mtime_ns == finished_at[d] for d in job_dirs if d != job_dirs[1])


def test_a_single_finished_run_is_reported_done(tmp_path: Path):
    args = [*BASE, "method=magnitude", "trainer.epochs=1"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "already done" in again.stdout
    assert len(list(tmp_path.glob("outputs/runs/*/summary.json"))) == 1


def test_resume_policies_name_the_key(tmp_path: Path):
    cfg = quick_cfg("method=magnitude")
    run(cfg, tmp_path / "run")
    from drive_runner.errors import ConfigError

    with pytest.raises(ConfigError, match="resume=never") as never:
        run(quick_cfg("method=magnitude", "resume=never"), tmp_path / "run")
    assert never.value.key == "resume"
    with pytest.raises(ConfigError, match="no training state") as must:
        run(quick_cfg("method=magnitude", "resume=must"), tmp_path / "fresh")
    assert must.value.key == "resume"
    with pytest.raises(ConfigError, match="trainer.epochs differ"):
        run(quick_cfg("method=magnitude", "trainer.epochs=2"), tmp_path / "run")


def test_directories_are_named_after_the_config_without_cosmetic_keys():
    from omegaconf import OmegaConf

    from drive_runner.tracking.naming import job_name

    def name(*overrides):
        return job_name(OmegaConf.to_container(quick_cfg(*overrides), resolve=True))

    assert name("seed=1").startswith("magnitude-lenet300-digits-s0.9-seed1-")
    assert name("logger.mode=offline", "hardware.threads=1") == name()
    assert name("trainer.lr=0.05") != name()


def test_a_finished_run_is_not_reported_done_for_another_job_and_resume_never_refuses_it(tmp_path: Path):
    """Issue 21, item 1: a finished run in R is "already done" only for its own config; another config, or
    resume=never, is refused with exit 2 before anything is launched, and "already done" says how to run again."""
    first = [*BASE, "method=magnitude", "trainer.epochs=1", "hydra.run.dir=R"]
    assert run_cli(*first, cwd=tmp_path).returncode == 0
    before = {path: path.stat().st_mtime_ns for path in (tmp_path / "R").rglob("*") if path.is_file()}
    again = run_cli(*first, cwd=tmp_path)
    assert again.returncode == 0 and "already done" in again.stdout
    assert "to run it again, give another hydra.run.dir or remove R" in again.stdout
    other = run_cli(*BASE, "method=snip", "sparsity=0.5", "trainer.epochs=1", "hydra.run.dir=R", cwd=tmp_path)
    assert other.returncode == 2
    assert other.stderr.startswith("drive-run: error: hydra.run.dir: R holds a run with a different config "
                                   "(method.") and "sparsity differ" in other.stderr
    never = run_cli(*first, "resume=never", cwd=tmp_path)
    assert never.returncode == 2 and never.stderr.startswith("drive-run: error: resume: R holds an earlier run")
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "R").rglob("*") if path.is_file()} == before


def test_a_diverged_run_is_not_resumed_from_the_state_that_led_there(tmp_path: Path, monkeypatch):
    """Issue 21, item 8: a run that failed (here: diverged in epoch 2) keeps no training state, so relaunching it
    runs it anew instead of replaying the steps that diverged."""
    from drive_runner.errors import TrainingDiverged
    from drive_runner.train.loop import TrainingSession

    real = TrainingSession._train_one_epoch

    def diverging(session, phase):
        if session.epoch == 1:
            raise TrainingDiverged("training diverged: loss is nan in epoch 2 (train)")
        return real(session, phase)

    cfg = quick_cfg("method=magnitude", "trainer.epochs=2")
    monkeypatch.setattr(TrainingSession, "_train_one_epoch", diverging)
    with pytest.raises(TrainingDiverged):
        run(cfg, tmp_path / "run")
    assert read_json(tmp_path / "run" / "summary.json")["status"] == "failed"
    assert not (tmp_path / "run" / "checkpoints" / "state.pt").exists()
    monkeypatch.setattr(TrainingSession, "_train_one_epoch", real)
    again = run(cfg, tmp_path / "run")
    assert again["status"] == "completed" and again["attempt"] == 2
    assert epochs(tmp_path / "run") == [("train", 1), ("train", 2)]  # both epochs trained again, from the start
