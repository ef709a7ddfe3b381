"""Every config composes and validates; bad values are rejected naming the key (before any work)."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from drive_runner.cli.compose import compose_config, one_line
from drive_runner.cli.run import prevalidate
from drive_runner.config import Config
from drive_runner.errors import ConfigError
from drive_runner.methods import METHODS
from drive_runner.validation import validate
from tests.conftest import REPO, make_cfg

GROUPS = ["model", "dataset", "method", "schedule", "trainer", "recipe", "hardware", "logger", "experiment"]
SCHEMA_GROUPS = ["model", "dataset", "method", "schedule", "trainer", "hardware", "logger"]
RECIPE_KEYS = {"epochs", "batch_size", "lr_reference_batch", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
               "lr_schedule", "lr_milestones", "lr_gamma", "lr_warmup_epochs"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


def test_default_config_is_the_paper_setting():
    cfg = compose_config([])  # the shipped defaults, without the tests' pinned device
    validate(cfg)
    assert (cfg.dataset.name, cfg.model.name) == ("cifar10", "vgg16")
    t = cfg.trainer
    assert (t.epochs, t.batch_size, t.lr, t.momentum, t.weight_decay) == (160, 128, 0.1, 0.9, 1e-4)
    assert list(t.lr_milestones) == [80, 120] and t.lr_gamma == 0.1
    assert cfg.hardware.device == "auto" and cfg.hardware.memory_budget_mb is None


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes_and_validates(group):
    found = options(group)
    assert found, f"no options in conf/{group}"
    for option in found:
        # The default model (VGG) needs >= 16 px images; digits options are checked with LeNet.
        extra = ["model=lenet300"] if group == "dataset" else []
        if group == "schedule":  # a schedule is checked with a method that takes it
            extra = [f"method={next(m for m, cls in METHODS.items() if option in cls.schedules)}"]
        cfg = make_cfg(f"{group}={option}", *extra)
        validate(cfg)
        if group in ("model", "dataset", "method", "schedule", "trainer", "logger"):
            assert cfg[group].name == option


def test_group_yaml_files_declare_a_schema():
    for group in SCHEMA_GROUPS:
        for path in (REPO / "conf" / group).glob("*.yaml"):
            assert f"/schema/{group}@_here_" in path.read_text(), f"{path} does not start from a schema"


def test_every_recipe_sets_the_whole_recipe():
    import yaml

    for path in (REPO / "conf" / "recipe").glob("*.yaml"):
        assert path.read_text().startswith("# @package trainer"), path
        assert set(yaml.safe_load(path.read_text())) == RECIPE_KEYS, path


def test_the_recipe_follows_the_dataset_unless_chosen():
    assert make_cfg("dataset=digits", "model=lenet300").trainer.batch_size == 64
    assert make_cfg("dataset=tinyimagenet").trainer.epochs == 200
    assert make_cfg("dataset=digits", "model=lenet300", "recipe=openlth_mnist").trainer.epochs == 40
    assert make_cfg("dataset=digits", "model=lenet300", "trainer.epochs=5").trainer.epochs == 5
    every_dataset = {p.stem for p in (REPO / "conf" / "dataset").glob("*.yaml")}
    assert every_dataset <= set(options("recipe"))


def test_top_level_schema_keys():
    assert {"sparsity", "compression", "seed", "prune"} <= set(Config.__dataclass_fields__)


@pytest.mark.parametrize(
    "override, key",
    [
        ("sparsity=1.5", "sparsity"),
        ("sparsity=-0.1", "sparsity"),
        ("sparsity=1.0", "sparsity"),
        ("trainer.epochs=-1", "trainer.epochs"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.lr=0", "trainer.lr"),
        ("seed=-3", "seed"),
        ("method.iterations=0", "method.iterations"),
        ("hardware.device=tpu", "hardware.device"),
        ("hardware.precision=fp8", "hardware.precision"),
        ("hardware.memory_budget_mb=-5", "hardware.memory_budget_mb"),
        ("prune.scope=local", "prune.scope"),
        ("logger.mode=sometimes", "logger.mode"),
        ("+method.foo=1", "method.foo"),
        ("method.warmup_epochs=5", "method.warmup_epochs"),
    ],
)
def test_out_of_range_values_name_the_key(override, key):
    extra = ["trainer.epochs=2"] if key == "method.warmup_epochs" else []
    with pytest.raises(ConfigError) as error:
        validate(make_cfg("dataset=digits", "model=lenet300", override, *extra))
    assert error.value.key == key
    assert "\n" not in str(error.value)


def test_model_that_does_not_fit_the_images_is_caught_before_work():
    with pytest.raises(ConfigError, match="dataset.image_size"):
        validate(make_cfg("dataset=digits", "model=vgg16"))
    validate(make_cfg("dataset=digits", "dataset.image_size=32", "model=vgg16"))


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["method=nope"], "method: unknown option 'nope'; allowed: dense, drive, gmp, grasp, imp, magnitude, prunetrain, random, snip, synflow"),
        (["trainer.epochs=abc"], "trainer.epochs: Value 'abc' of type 'str' could not be converted to Integer"),
        (["method.foo=1"], "method.foo: unknown key; method keys are after_prune, alpha, batches_per_iter, beta, "
                           "bn_mode, combine, convergence_term, dtype, gamma, iterations, name, normalization, rewind_step, "
                           "warmup_epochs"),
        (["metod=drive"], "metod: unknown key; top-level keys are compression, dataset, experiment, hardware, logger, "
                          "method, model, prune, recipe, resume, schedule, seed, sparsity, table, trainer"),
    ],
)
def test_composition_errors_become_one_line(argv, expected):
    with pytest.raises(Exception) as error:
        prevalidate(argv)
    assert one_line(error.value) == expected


def test_every_job_of_a_sweep_is_validated_before_any_runs():
    prevalidate(["-m", "dataset=digits", "model=lenet300", "method=random,magnitude", "sparsity=0.5,0.9"])
    with pytest.raises(ConfigError, match="sparsity"):
        prevalidate(["-m", "dataset=digits", "model=lenet300", "method=random,magnitude", "sparsity=0.5,1.9"])


def test_sparsity_and_compression_together_are_refused():
    with pytest.raises(ConfigError, match="compression"):
        prevalidate(["sparsity=0.5", "compression=2"])


def test_compression_sets_the_density():
    from drive_runner.pruning.targets import target_density

    assert target_density(make_cfg("compression=2")) == pytest.approx(0.01)
    assert target_density(make_cfg("sparsity=0.75")) == pytest.approx(0.25)


def test_completed_run_directory_is_reported_done_not_run_again(tmp_path: Path, capsys):
    from drive_runner.cli.run import _announce

    (tmp_path / "summary.json").write_text('{"status": "completed"}')
    checked = prevalidate(["dataset=digits", "model=lenet300", f"hydra.run.dir={tmp_path}"])
    assert checked[3] == [tmp_path]
    assert _announce(*checked) is False and "already done" in capsys.readouterr().out
    (tmp_path / "summary.json").write_text('{"status": "failed"}')
    assert _announce(*prevalidate(["dataset=digits", "model=lenet300", f"hydra.run.dir={tmp_path}"])) is True


def test_resolved_config_round_trips_to_yaml():
    cfg = make_cfg("experiment=quickstart")
    text = OmegaConf.to_yaml(cfg, resolve=True)
    assert "name: digits" in text and "name: lenet300" in text


PRIMARY_OF_ONES_OWN = """\
defaults:
  - config
  - override dataset: digits
  - override model: lenet300
  - override method: magnitude
  - _self_

hydra:
  searchpath: [pkg://drive_runner.conf]

seed: 4
"""


@pytest.mark.parametrize("flags", [["-cp", "conf", "-cn", "lenet"], ["-cd", "conf", "-cn", "lenet"]])
def test_runs_with_a_primary_config_of_ones_own_are_checked_named_and_skipped_like_any(tmp_path, monkeypatch, capsys,
                                                                                     flags):
    """-cp, -cn and -cd: the same checks before any directory, the same directory names, the same "already done"."""
    from drive_runner.cli.run import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "lenet.yaml").write_text(PRIMARY_OF_ONES_OWN)
    assert main([*flags, "sparsity=2"]) == 2
    assert capsys.readouterr().err == "drive-run: error: sparsity: must be a number in [0, 1), got 2.0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]
    configs, directory, _, _ = prevalidate([*flags, "trainer.epochs=1", "logger=none"])
    assert (configs[0].model.name, configs[0].seed) == ("lenet300", 4)
    assert directory.name.startswith("magnitude-lenet300-digits-s0.9-seed4-")
    assert main([*flags, "trainer.epochs=1", "logger=none", "hardware.device=cpu"]) == 0
    capsys.readouterr()
    assert main([*flags, "trainer.epochs=1", "logger=none", "hardware.device=cpu"]) == 0
    assert "already done" in capsys.readouterr().out


def test_a_missing_config_dir_is_refused_naming_the_flag(tmp_path, monkeypatch, capsys):
    from drive_runner.cli.run import main

    monkeypatch.chdir(tmp_path)
    assert main(["--config-dir", "nowhere", "dataset=digits"]) == 2
    assert capsys.readouterr().err.startswith("drive-run: error: --config-dir: no such directory: ")


def test_a_dataset_without_a_recipe_of_its_own_trains_with_the_generic_recipe():
    from drive_runner.cli.compose import CommandLine, compose_job, initialised
    from drive_runner.train.options import TrainerConfig

    line = CommandLine(["dataset=noisy_digits", "model=lenet300"], config_dir=str(REPO / "examples/own_project/conf"))
    with initialised(line):
        cfg = compose_job(line, line.overrides, with_hydra=False)
    generic = TrainerConfig()
    assert (cfg.trainer.epochs, cfg.trainer.lr, cfg.trainer.lr_schedule, cfg.trainer.batch_size) == \
        (generic.epochs, generic.lr, generic.lr_schedule, generic.batch_size)
    assert make_cfg("dataset=digits", "model=lenet300").trainer.batch_size == 64  # a dataset's own recipe
