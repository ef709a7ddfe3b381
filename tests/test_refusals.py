"""Every bad input ends in one line naming the key, exit status 2, no traceback, and no run directory."""

import json
from pathlib import Path

import pytest
import torch

from drive_runner.cli.run import main
from tests.conftest import run_cli

LENET = ["dataset=digits", "model=lenet300"]
NOT_WRITABLE = "/sys/drive-run-refusal-test"  # sysfs refuses new folders to every user, root included

REFUSED = [
    # targets that keep no weight
    ([*LENET, "sparsity=0.9999999"], "sparsity"),
    ([*LENET, "compression=20"], "compression"),
    ([*LENET, "compression=inf"], "compression"),
    ([*LENET, "sparsity=0.5", "compression=2"], "compression"),
    # a score that ranks nothing
    ([*LENET, "method=drive", "method.alpha=0", "method.beta=0", "method.gamma=0"], "method.alpha"),
    # non-finite or absurd values
    ([*LENET, "trainer.lr=inf"], "trainer.lr"),
    ([*LENET, "trainer.lr=1e400"], "trainer.lr"),
    ([*LENET, "trainer.weight_decay=inf"], "trainer.weight_decay"),
    ([*LENET, "method=prunetrain", "method.threshold=nan"], "method.threshold"),
    ([*LENET, "seed=99999999999999999999"], "seed"),
    ([*LENET, "seed=1" + "0" * 400], "seed"),
    ([*LENET, "trainer.epochs=1" + "0" * 30], "trainer.epochs"),
    ([*LENET, "dataset.image_size=100000"], "dataset.image_size"),
    # run directories that cannot take a run
    ([*LENET, "hydra.run.dir="], "hydra.run.dir"),
    ([*LENET, "hydra.run.dir=''"], "hydra.run.dir"),
    ([*LENET, "hydra.run.dir=a_file"], "hydra.run.dir"),
    ([*LENET, "hydra.run.dir=a_file/run"], "hydra.run.dir"),
    ([*LENET, f"hydra.run.dir={NOT_WRITABLE}"], "hydra.run.dir"),
    ([*LENET, f"hydra.run.dir={'n' * 300}"], "hydra.run.dir"),
    (["-m", *LENET, "method=random,magnitude", "hydra.sweep.dir=a_file"], "hydra.sweep.dir"),
    # the prunable set
    ([*LENET, "prune.exclude=[fc1.weight,fc2.weight,fc3.weight]"], "prune.exclude"),
    ([*LENET, "prune.exclude=[nope]"], "prune.exclude"),
    # names
    (["model=" + "x" * 3000], "model"),
    (["metod=drive"], "metod"),
    (["trainer.epoch=5"], "trainer.epoch"),
    # hardware, shapes and budgets
    ([*LENET, "hardware.device=cuda"], "hardware.device"),
    ([*LENET, "hardware.precision=fp8"], "hardware.precision"),
    ([*LENET, "method=synflow", "method.dtype=float16"], "method.dtype"),
    ([*LENET, "hardware.compile=true", "hardware.compile_backend=nope"], "hardware.compile_backend"),
    ([*LENET, "dataset.channels=2"], "dataset.channels"),
    ([*LENET, "hardware.memory_budget_mb=0.01"], "hardware.memory_budget_mb"),
    ([*LENET, "hardware.memory_budget_mb=1", "trainer.batch_size=4096"], "trainer.batch_size"),
    ([*LENET, "trainer.batch_size=auto"], "trainer.batch_size"),
    # no training for a method that needs it to find its mask
    (["experiment=quickstart", "trainer.epochs=0"], "method.warmup_epochs"),
    ([*LENET, "method=gmp", "trainer.epochs=0"], "trainer.epochs"),
    ([*LENET, "method=imp", "trainer.epochs=0"], "trainer.epochs"),
    ([*LENET, "method=prunetrain", "trainer.epochs=5"], "trainer.epochs"),
]


@pytest.mark.parametrize("argv, key", REFUSED, ids=[" ".join(argv)[:60] for argv, _ in REFUSED])
def test_refused_with_one_line_naming_the_key_before_any_directory(argv, key, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same verdicts on a GPU machine
    (tmp_path / "a_file").write_text("not a directory")
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"drive-run: error: {key}: "), err
    assert "Traceback" not in out + err and len(lines[0]) < 600
    assert sorted(tmp_path.rglob("*")) == before
    assert not Path(NOT_WRITABLE).exists()


def test_the_epochs_zero_refusal_names_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["experiment=quickstart", "trainer.epochs=0"]) == 2
    assert "set method.warmup_epochs=0 to prune at initialisation" in capsys.readouterr().err


def test_the_emptiest_target_names_the_most_extreme_one_that_keeps_a_weight(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*LENET, "sparsity=0.9999999"]) == 2
    # LeNet-300-100 on 8x8 digits: 64*300 + 300*100 + 100*10 = 50,200 prunable weights.
    assert "sparsity=0.9999800797 (compression=4.701)" in capsys.readouterr().err


def test_the_console_script_refuses_the_same_way(tmp_path):
    result = run_cli(*LENET, "trainer.lr=1e400", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "drive-run: error: trainer.lr: must be a number in (0, inf), got inf\n"
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sweep", ["sparsity=0.5,0.9", "method=drive,snip"])
def test_a_sweep_without_multirun_says_to_add_it_and_the_fix_runs(sweep, tmp_path, monkeypatch, capsys):
    """Issue 21, item 5: `key=a,b` without -m is one line naming the key and saying to add -m (not Hydra's
    "ambiguous value" or "unknown option 'drive,snip'"); with -m the same command is good."""
    from drive_runner.cli.run import prevalidate

    monkeypatch.chdir(tmp_path)
    assert main([*LENET, sweep]) == 2
    line = capsys.readouterr().err.strip()
    key = sweep.split("=")[0]
    assert line == (f"drive-run: error: {key}: {sweep} lists several values, a sweep: add -m to run one job per "
                    f"value (drive-run -m {sweep} ...), or give one value")
    assert list(tmp_path.iterdir()) == []
    configs, _, multirun, _ = prevalidate(["-m", *LENET, sweep, "trainer.epochs=2"])  # the fix it names runs
    assert multirun and len(configs) == 2


SUGGESTED_FIXES = [
    # (refused command, the fix the one line must name, the fix as overrides)
    (["dataset=digits", "model=lenet5", "method=dense"], "set dataset.image_size=28 and trainer.lr=0.01",
     ["dataset.image_size=28", "trainer.lr=0.01"]),
    (["dataset=digits", "model=vgg11", "method=dense"], "set dataset.image_size=32", ["dataset.image_size=32"]),
    (["experiment=quickstart", "trainer.epochs=0"], "set method.warmup_epochs=0", ["method.warmup_epochs=0"]),
    ([*LENET, "sparsity=0.9999999", "method=magnitude"], "sparsity=0.9999800797", ["sparsity=0.9999800797"]),
    ([*LENET, "method=imp", "trainer.epochs=0"], "use method=magnitude", ["method=magnitude"]),
]


@pytest.mark.parametrize("argv, says, fix", SUGGESTED_FIXES, ids=[" ".join(a)[:40] for a, _, _ in SUGGESTED_FIXES])
def test_a_refusals_suggested_fix_runs(argv, says, fix, tmp_path, monkeypatch, capsys):
    """Issue 21, item 7: the fix a refusal names completes a run (LeNet-5 at 28 px diverged at the recipe's lr)."""
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "logger=none"]) == 2
    assert says in capsys.readouterr().err
    epochs = [] if "trainer.epochs=0" in argv else ["trainer.epochs=2"]
    assert main([*argv, *fix, *epochs, "logger=none", "hardware.device=cpu", "hydra.run.dir=run"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
