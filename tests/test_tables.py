"""Published tables: every table file composes into its jobs, names reference data that loads, and runs
(two jobs each, tiny overrides) to a report with the paper's numbers beside ours."""

import json
from pathlib import Path

import pytest

from drive_runner.cli.compose import compose_config
from drive_runner.cli.run import prevalidate
from drive_runner.cli.usage import group_options
from drive_runner.errors import ConfigError
from drive_runner.tables.grid import table_jobs
from drive_runner.tables.references import QUANTITIES, load_reference, reference_names
from tests.conftest import read_json, run_cli
from tests.test_data import write_mnist

TABLES = group_options("table")
CIFAR_TABLES = ["synflow_fig6", "grasp_cifar", "drive_cifar", "prunetrain_cifar"]
MNIST_TABLES = ["snip_mnist", "sanity_mnist", "lth_mnist"]
TINY = ["dataset=synthetic", "dataset.num_train=64", "dataset.num_test=32", "trainer.epochs=2",
        "trainer.batch_size=32", "method.iterations=2", "logger=none", "table.limit=2"]


def jobs(*overrides: str) -> list[list[str]]:
    table = [o for o in overrides if o.split("=")[0].split(".")[0] == "table"]
    return table_jobs(compose_config(table).table, list(overrides))


def test_every_table_is_listed_and_names_its_reference():
    assert sorted(TABLES) == sorted(CIFAR_TABLES + MNIST_TABLES)
    for name in TABLES:
        table = compose_config([f"table={name}"]).table
        assert table.name == name and table.reference in reference_names()


@pytest.mark.parametrize("name", sorted(reference_names()))
def test_reference_data_loads_with_known_quantities(name):
    reference = load_reference(name)
    assert reference.paper and reference.source and reference.recipe
    for comparison in reference.comparisons:
        assert comparison.quantity in QUANTITIES and comparison.entries
        assert all("value" in entry and "method" in entry for entry in comparison.entries)


def test_snip_table_is_the_union_of_its_grids():
    all_jobs = jobs("table=snip_mnist")
    assert len(all_jobs) == 7 * 2 * 3 + 3 + 3 * 2 * 3 + 3  # LeNet-300-100 rows, its dense, LeNet-5 rows, its dense
    lenet5 = [job for job in all_jobs if "model=lenet5" in job]
    assert {o for job in lenet5 for o in job if o.startswith("sparsity=")} == {"sparsity=0.98", "sparsity=0.99",
                                                                                "sparsity=0.0"}
    assert all("recipe=snip_mnist_lenet5_quick" in job for job in lenet5)


def test_the_command_line_overrides_every_job_and_may_sweep_and_switch_recipe():
    chosen = jobs("table=snip_mnist", "seed=7", "method=snip,random")
    # The method sweep replaces every grid's methods, the dense grids' too: 4 grids x 2 methods (x 2 sparsities).
    assert all("seed=7" in job for job in chosen) and len(chosen) == 2 * 2 + 2 + 2 * 2 + 2
    paper = jobs("table=snip_mnist", "table.recipe=paper")
    assert all("recipe=snip_mnist_paper" in job and "dataset.validation_size=6000" in job
               and "model.linear_init=xavier" in job
               for job in paper if "model=lenet300" in job)
    with pytest.raises(ConfigError, match="table.recipe.*allowed: causes, paper, quick"):
        jobs("table=snip_mnist", "table.recipe=fast")
    assert len(jobs("table=snip_mnist", "table.limit=5")) == 5


def test_sanity_table_shortens_only_imp_levels_and_only_in_the_quick_recipe():
    quick, paper = jobs("table=sanity_mnist"), jobs("table=sanity_mnist", "table.recipe=paper")
    assert (len(quick), len(paper)) == (7 * 2 * 3 * 2, 7 * 2 * 3 * 3)  # two seeds in the quick recipe, three in the paper's
    assert all(("schedule.fraction=0.5" in job) == ("method=imp" in job) for job in quick)
    assert not any(o.startswith("schedule.fraction") for job in paper for o in job)


# The two largest grids take half a minute each to compose and validate: in the slow suite.
@pytest.mark.parametrize("name, count", [pytest.param("synflow_fig6", 504, marks=pytest.mark.slow),
                                         pytest.param("grasp_cifar", 180, marks=pytest.mark.slow),
                                         ("prunetrain_cifar", 12), ("sanity_mnist", 84), ("lth_mnist", 3)])
def test_every_job_of_a_table_is_validated_before_launch(name, count, monkeypatch, tmp_path):
    monkeypatch.setenv("DRIVE_RUN_ID", "x")
    monkeypatch.chdir(tmp_path)
    configs, directory, multirun, job_dirs = prevalidate([f"table={name}"])
    assert len(configs) == count and multirun
    assert directory == Path("outputs/tables") / name / "x"
    assert all(cfg.table.name == name for cfg in configs)


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in ("grasp_cifar", "drive_cifar")
                                  else name for name in CIFAR_TABLES])  # the two longest in the slow suite
def test_cifar_table_smoke_runs_two_jobs_to_a_report(name, tmp_path):
    extra = ["method=prunetrain", "method.interval=1"] if name == "prunetrain_cifar" else []
    result = run_cli(f"table={name}", *TINY, *extra, "hydra.sweep.dir=T", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    summaries = [read_json(p) for p in (tmp_path / "T").glob("*/summary.json")]
    assert len(summaries) == 2 and all(s["status"] == "completed" for s in summaries)
    report = read_json(tmp_path / "T" / "report" / "report.json")
    assert report["reference"] == name and "report.md" in report["files"]
    assert (tmp_path / "T" / "report" / "report.md").read_text().startswith("# Report: 2 completed of 2 runs")


@pytest.mark.parametrize("name", MNIST_TABLES)
def test_mnist_table_smoke_on_tiny_idx_files(name, tmp_path):
    write_mnist(tmp_path / "data", train=40, test=20)
    result = run_cli(f"table={name}", f"dataset.root={tmp_path / 'data'}", "trainer.epochs=1", "logger=none",
                     "table.limit=2", "hydra.launcher.n_jobs=1", "hydra.sweep.dir=T", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "T").glob("*/summary.json"))) == 2
    assert json.loads((tmp_path / "T" / "report" / "report.json").read_text())["reference"] == name


def test_the_cfg_flag_shows_a_tables_grid(tmp_path):
    result = run_cli("table=synflow_fig6", "--cfg", "job", cwd=tmp_path, pinned=False)
    assert result.returncode == 0, result.stderr
    assert "grids:" in result.stdout and "synflow_fig6_resnet18" in result.stdout and "2.5" in result.stdout


def test_a_table_says_how_many_jobs_and_how_long_and_lists_them(tmp_path):
    """Issue 21, item 4: --cfg job lists the jobs and their count; a launch starts with one line giving the job
    count and the table's expected time; overriding what a table measures (here dataset and model) is stated
    before the launch and in the report, which leaves the paper's numbers out."""
    listed = run_cli("table=snip_mnist", "--cfg", "job", cwd=tmp_path, pinned=False)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert lines[-1] == "66 jobs" and lines[-2].startswith("  65  model=lenet5 ") and "grids:" in listed.stdout
    result = run_cli("table=snip_mnist", "dataset=digits", "model=lenet300", "trainer.epochs=1", "logger=none",
                     "table.limit=2", "hydra.launcher.n_jobs=1", "hydra.sweep.dir=T", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("drive-run: table snip_mnist (quick recipe): 2 jobs; expected about 2 h on 2 CPU cores")
    assert "dataset=digits, model=lenet300 change what it measures, so its report leaves out the paper's numbers" \
        in first
    report = (tmp_path / "T" / "report" / "report.md").read_text()
    assert "Table snip_mnist was run with dataset=digits, model=lenet300, which change what it measures" in report
    assert "ours against the paper" not in report and "Reference: N. Lee" in report


def test_editing_a_table_keeps_the_directories_of_its_finished_jobs():
    """A job's directory is named after what it computes, not after the table's other rows: adding a row to a
    table (or launching it with table.limit) keeps every other job's name, so the relaunch reports those done."""
    from omegaconf import OmegaConf

    from drive_runner.tracking.naming import job_name

    first = jobs("table=snip_mnist")[0]

    def name(*table_overrides, edit=lambda table: None):
        container = OmegaConf.to_container(compose_config(["table=snip_mnist", *table_overrides, *first]),
                                           resolve=True, enum_to_str=True)
        edit(container["table"])
        return job_name(container)

    added_row = name(edit=lambda table: table["grids"]["quick"].append({"model": "lenet300", "method": "snip"}))
    assert name() == added_row == name("table.limit=5")
    assert name("trainer.lr=0.05") != name()  # what the job computes still names it


def test_a_table_launched_in_part_and_then_further_continues_in_one_folder(tmp_path):
    """table.limit=N runs the first N jobs; a later launch with a larger limit (or none) goes to the same folder
    and finds those N done, so a table can be run a part at a time."""
    write_mnist(tmp_path / "data", train=40, test=20)
    common = ["table=lth_mnist", f"dataset.root={tmp_path / 'data'}", "trainer.epochs=1", "sparsity=0.2",
              "logger=none", "hydra.launcher.n_jobs=1"]
    first = run_cli(*common, "table.limit=1", cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    (folder,) = (tmp_path / "outputs" / "tables" / "lth_mnist").iterdir()
    done = {path.parent.name for path in folder.glob("*/summary.json")}
    assert len(done) == 1
    second = run_cli(*common, "table.limit=2", cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr
    assert [path.name for path in (tmp_path / "outputs" / "tables" / "lth_mnist").iterdir()] == [folder.name]
    assert sum(line.startswith("already done: ") for line in second.stdout.splitlines()) == 1
    assert done < {path.parent.name for path in folder.glob("*/summary.json")}
    assert len(list(folder.glob("*/summary.json"))) == 2
