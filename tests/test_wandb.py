"""W&B: the offline run is read back from its .wandb file; a W&B failure never fails a run."""

from pathlib import Path

import pytest

from drive_runner.pipeline import JobInfo, run
from drive_runner.tracking import wandb_logger
from tests.conftest import make_cfg
from tests.wandb_offline import offline_run


def test_offline_run_holds_config_metrics_layer_table_summary_and_artifact(tmp_path: Path):
    cfg = make_cfg("dataset=digits", "model=lenet300", "method=magnitude", "trainer.epochs=2", "logger=wandb", "logger.mode=offline")
    summary = run(cfg, tmp_path / "run", JobInfo(group="my-sweep"))
    logged = offline_run(tmp_path / "run")

    assert logged["run"].run_group == "my-sweep"
    assert logged["run"].project == "drive-runner"
    assert logged["config"]["method"]["name"] == "magnitude"
    assert logged["config"]["sparsity"] == 0.9

    epochs = [row for row in logged["history"] if "train/loss" in row]
    assert [row["epoch"] for row in epochs] == [1, 2]
    assert all("test/acc" in row and "lr" in row for row in epochs)

    tables = [row["layer_sparsity"] for row in logged["history"] if "layer_sparsity" in row]
    assert len(tables) == 1 and tables[0]["_type"] == "table-file" and tables[0]["nrows"] == 3
    table_file = logged["files_dir"] / tables[0]["path"]
    assert '"fc1.weight"' in table_file.read_text()

    assert logged["summary"]["test_acc"] == pytest.approx(summary["test_acc"])
    assert logged["summary"]["status"] == "completed"
    model_artifacts = [a for a in logged["artifacts"] if a.type == "model"]
    assert len(model_artifacts) == 1
    assert sorted(entry.path for entry in model_artifacts[0].manifest.contents) == ["final.pt", "masks.pt"]


def test_wandb_that_cannot_start_does_not_fail_the_run(tmp_path: Path, monkeypatch, capsys):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken_init)
    cfg = make_cfg("dataset=digits", "model=lenet300", "method=magnitude", "trainer.epochs=1", "logger.mode=offline")
    summary = run(cfg, tmp_path / "run")
    assert summary["status"] == "completed"
    assert "W&B could not start" in capsys.readouterr().err


def test_wandb_failing_mid_run_does_not_fail_the_run(tmp_path: Path, monkeypatch, capsys):
    def broken_log(self, metrics, step=None):
        raise ConnectionError("server went away")

    monkeypatch.setattr(wandb_logger.WandbLogger.log.__wrapped__, "__code__", broken_log.__code__)
    cfg = make_cfg("dataset=digits", "model=lenet300", "method=magnitude", "trainer.epochs=2", "logger.mode=offline")
    summary = run(cfg, tmp_path / "run")
    assert summary["status"] == "completed"
    assert (tmp_path / "run" / "summary.json").exists()
    err = capsys.readouterr().err
    assert err.count("W&B log failed") == 1  # reported once, then W&B is off


def test_auto_mode_is_offline_without_an_api_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_logger.resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_logger.resolve_mode("auto") == "online"
    assert wandb_logger.resolve_mode("disabled") == "disabled"


def test_a_resumed_run_leaves_one_offline_run_with_the_whole_history_under_the_same_id(tmp_path: Path, monkeypatch):
    import drive_runner.runners.backprop as pipeline  # where the final evaluation runs

    cfg = make_cfg("dataset=digits", "model=lenet300", "method=magnitude", "trainer.epochs=2", "logger=wandb",
                   "logger.mode=offline")
    real_evaluate = pipeline.evaluate

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(pipeline, "evaluate", crash)
    with pytest.raises(Crash):
        run(cfg, tmp_path / "run")
    crashed = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(crashed) == 1
    monkeypatch.setattr(pipeline, "evaluate", real_evaluate)
    summary = run(cfg, tmp_path / "run")

    assert summary["status"] == "completed" and summary["attempt"] == 2
    assert len(list((tmp_path / "run" / "attempts" / "1" / "wandb").glob("offline-run-*"))) == 1  # kept apart
    logged = offline_run(tmp_path / "run")  # exactly one offline run left to sync
    assert logged["run"].run_id == crashed[0].name.rsplit("-", 1)[-1]  # the same W&B run, continued
    epochs = [row["epoch"] for row in logged["history"] if "train/loss" in row]
    assert epochs == [1, 2]  # the earlier attempt's epochs replayed, none twice
    assert sum("layer_sparsity" in row for row in logged["history"]) == 1
    assert logged["summary"]["status"] == "completed"
