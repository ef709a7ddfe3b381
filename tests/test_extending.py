"""A researcher's own model, dataset and method through drive-run (docs/extending.md): built in a folder outside
the package, run by every built-in method, reloaded, reported; torchvision's models; the example project."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from drive_runner.checkpoint import load_checkpoint
from drive_runner.cli.report import main as report_main
from drive_runner.models import build_model
from tests.conftest import REPO, read_json, run_cli

MODEL = '''
from torch import nn


class TinyNet(nn.Module):
    """Two convs and a linear head; `units()` lets NeuroFlux train it block by block."""

    def __init__(self, in_channels, num_classes, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.head(self.features(x))

    def units(self):
        return [self.features[:3], self.features[3:]], self.head
'''

DATA = '''
import torch
from torch.utils.data import TensorDataset


def stripes(num_train=96, num_test=48, size=8, seed=0):
    """Horizontal (0), vertical (1) or no stripes (2) under noise: 1 x size x size images."""
    generator = torch.Generator().manual_seed(seed)

    def split(count):
        labels = torch.arange(count) % 3
        images = 0.3 * torch.randn((count, 1, size, size), generator=generator)
        images[labels == 0, :, ::2, :] += 1.0
        images[labels == 1, :, :, ::2] += 1.0
        return TensorDataset(images, labels)

    return split(num_train), split(num_test)
'''

PRUNING = ["random", "magnitude", "snip", "grasp", "synflow", "drive", "imp", "gmp"]


def write_project(root: Path) -> Path:
    """A package `myproj` and its configs, as a researcher keeps them; returns the config directory."""
    (root / "myproj").mkdir(parents=True)
    (root / "myproj" / "__init__.py").write_text("")
    (root / "myproj" / "models.py").write_text(MODEL)
    (root / "myproj" / "data.py").write_text(DATA)
    conf = root / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "dataset").mkdir()
    (conf / "model" / "tinynet.yaml").write_text("_target_: myproj.models.TinyNet\nname: tinynet\nwidth: 8\n")
    (conf / "dataset" / "stripes.yaml").write_text("_target_: myproj.data.stripes\nname: stripes\n")
    return conf


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    return root, write_project(root)


def own(root: Path, conf: Path, *args: str, cwd: Path, flags: tuple[str, ...] = (), timeout: int = 600):
    return run_cli(*flags, "--config-dir", str(conf), "model=tinynet", "dataset=stripes", "logger=none", *args,
                   cwd=cwd, env={"PYTHONPATH": str(root)}, timeout=timeout)


@pytest.fixture(scope="module")
def sweep(project, tmp_path_factory):
    """Every built-in method on the model and dataset of one's own: one sweep, PruneTrain and NeuroFlux beside it."""
    root, conf = project
    cwd = tmp_path_factory.mktemp("sweep")
    result = own(root, conf, f"method=dense,{','.join(PRUNING)}", "sparsity=0.5", "trainer.epochs=4",
                 "method.iterations=3", "hydra.sweep.dir=sweep", cwd=cwd, flags=("-m",))
    assert result.returncode == 0, result.stderr
    for args, where in (((("method=prunetrain", "method.interval=2", "trainer.epochs=4")), "prunetrain"),
                        (("trainer=neuroflux", "trainer.epochs_per_block=1", "logger=wandb", "logger.mode=offline"),
                         "neuroflux")):
        result = own(root, conf, *args, f"hydra.run.dir=sweep/{where}", cwd=cwd)
        assert result.returncode == 0, result.stderr
    return cwd / "sweep"


def summaries(sweep_dir: Path) -> dict[str, dict]:
    found = {}
    for path in sweep_dir.rglob("summary.json"):
        summary = read_json(path)
        found["neuroflux" if "neuroflux" in summary else summary["method"]] = summary
    return found


def test_every_built_in_method_completes_on_a_model_and_dataset_of_ones_own(sweep):
    found = summaries(sweep)
    assert set(found) == {"dense", *PRUNING, "prunetrain", "neuroflux"}
    for method, summary in found.items():
        assert summary["status"] == "completed", method
        assert (summary["model"], summary["dataset"]) == ("tinynet", "stripes")
    for method in PRUNING:  # exactly round(N / 2) weights survive, whatever the method
        summary = found[method]
        assert sum(layer["survivors"] for layer in summary["layers"]) == round(summary["params_prunable"] * 0.5), method
    assert found["dense"]["achieved_sparsity"] == 0.0
    assert found["prunetrain"]["target_sparsity"] is None and "reconfigurations" in found["prunetrain"]
    assert found["neuroflux"]["neuroflux"]["blocks"]
    assert list((sweep / "neuroflux" / "wandb").glob("offline-run-*"))  # logged, its exit model the artifact


def test_checkpoints_reload_into_a_model_built_from_their_saved_config(sweep, project, monkeypatch):
    root, _ = project
    monkeypatch.syspath_prepend(str(root))
    for final in sweep.rglob("final.pt"):
        checkpoint = torch.load(final, weights_only=True)
        assert checkpoint["model"]["_target_"] == "myproj.models.TinyNet"
        model, engine = load_checkpoint(final)  # shrunk architectures (PruneTrain) are rebuilt first
        assert engine.survivors() == sum(int(mask.sum()) for mask in checkpoint["masks"].values())
        plain = build_model(checkpoint["model"], checkpoint["input_shape"], checkpoint["num_classes"])
        if "prunetrain" not in str(final):  # the plain load of the README: same widths, same tensors
            plain.load_state_dict(checkpoint["state_dict"])
            assert all(torch.equal(plain.state_dict()[k], v) for k, v in checkpoint["state_dict"].items())


def test_drive_report_reads_the_sweep(sweep, capsys):
    assert report_main([str(sweep), "--out", str(sweep / "report")]) == 0
    report = (sweep / "report" / "report.md").read_text()
    for method in ("dense", *PRUNING):
        assert method in report
    assert (sweep / "report" / "accuracy.png").is_file()


def test_a_changed_model_source_is_not_reported_done(project, tmp_path):
    """The job identity covers the code of one's own package: an edited module gets a run of its own, and the
    directory of the earlier run refuses it, naming the file that changed."""
    root, conf = project
    copy = tmp_path / "project"
    conf = write_project(copy)
    args = ("method=magnitude", "trainer.epochs=1")
    first = own(copy, conf, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = own(copy, conf, *args, cwd=tmp_path)
    assert "already done" in again.stdout
    run_dir = next((tmp_path / "outputs" / "runs").iterdir())
    assert json.loads((run_dir / "sources.json").read_text())["myproj"]["myproj/models.py"]
    models = copy / "myproj" / "models.py"
    models.write_text(models.read_text().replace("width=8", "width=6"))
    changed = own(copy, conf, *args, cwd=tmp_path)
    assert changed.returncode == 0 and "already done" not in changed.stdout
    assert f"a new run: myproj/models.py changed since the run in {run_dir.relative_to(tmp_path)}" in changed.stdout
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 2
    refused = own(copy, conf, *args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert refused.returncode == 2 and "myproj/models.py" in refused.stderr


def test_torchvision_resnet18_with_synflow_at_99_percent(tmp_path):
    """A torchvision constructor named on the command line alone (no config file)."""
    result = run_cli("~model", "+model._target_=torchvision.models.resnet18", "+model.num_classes=10",
                     "dataset=synthetic", "method=synflow", "sparsity=0.99", "method.iterations=20", "trainer.epochs=0",
                     "logger=none", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["model"] == "resnet18" and summary["status"] == "completed"
    assert sum(layer["survivors"] for layer in summary["layers"]) == round(summary["params_prunable"] * 0.01)


def test_the_example_project_runs_as_the_docs_say(tmp_path):
    example = REPO / "examples" / "own_project"
    result = run_cli("--config-dir", str(example / "conf"), "model=tiny_resnet", "dataset=noisy_digits",
                     "method=grad_norm", "sparsity=0.9", "trainer.epochs=1", "logger=none", "hydra.run.dir=run",
                     cwd=tmp_path, env={"PYTHONPATH": str(example)})
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "completed" and summary["method"] == "grad_norm"
    assert abs(summary["achieved_sparsity"] - 0.9) < 1e-3


def test_a_method_of_ones_own_registered_by_an_entry_point(tmp_path):
    """`method=<name>` for a method an installed package declares in its drive_runner.methods entry points."""
    entry_point_package(tmp_path, "smallest = rule:Smallest", '''
        from drive_runner.methods import ScoringMethod


        class Smallest(ScoringMethod):
            """Keeps the smallest weights: a rule nobody should use, registered to show it can be."""

            name = "smallest"

            def scoring_batches(self, ctx):
                return []

            def score(self, model, names, batches, *, generator, input_shape):
                params = dict(model.named_parameters())
                return {name: -params[name].detach().abs() for name in names}
        ''')
    result = run_cli("method=smallest", "dataset=digits", "model=lenet300", "trainer.epochs=1", "logger=none",
                     "method.iterations=2", "schedule=exponential", "hydra.run.dir=run", cwd=tmp_path,
                     env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["method"] == "smallest" and abs(summary["achieved_sparsity"] - 0.9) < 1e-3


# --------------------------------------------------------------------------- bad input from one's own code
OWN_FAULTS = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset


def not_a_module(num_classes):
    return [num_classes]


class NoWeights(nn.Module):
    """Scores classes with a learned scale but has no Conv2d or Linear weight to prune."""

    def __init__(self, num_classes):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(num_classes))

    def forward(self, x):
        return x.flatten(1)[:, : self.scale.numel()] * self.scale


def one_split():
    return TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
'''

OWN_REFUSALS = [
    (["~model", "+model._target_=nowhere.Net"], "model._target_", "cannot import nowhere.Net"),
    (["~model", "+model._target_=myproj.faults.not_a_module"], "model._target_", "returned a list, not a torch.nn.Module"),
    (["~model", "+model._target_=myproj.faults.NoWeights"], "model", "has no Conv2d or Linear weight"),
    (["+model.num_classes=5"], "model", "gives (1, 5) for one image, but stripes has 3 classes"),
    (["+model.depth=3"], "model.depth", "myproj.models.TinyNet does not take depth; it takes in_channels, num_classes"),
    (["dataset=one_split"], "dataset._target_", "expected (train, test)"),
    (["~dataset", "+dataset._target_=myproj.data.stripes"], "dataset", "needs a config file"),
    (["model._target_=myproj.models.TinyNet", "model=vgg11"], "model._target_", "~model +model._target_="),
]


@pytest.mark.parametrize("argv, key, says", OWN_REFUSALS, ids=[" ".join(a)[:50] for a, _, _ in OWN_REFUSALS])
def test_faults_of_ones_own_code_are_refused_in_one_line(project, tmp_path, monkeypatch, capsys, argv, key, says):
    from drive_runner.cli.run import main

    root, conf = project
    (root / "myproj" / "faults.py").write_text(OWN_FAULTS)
    (conf / "dataset" / "one_split.yaml").write_text("_target_: myproj.faults.one_split\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(tmp_path)
    base = ["--config-dir", str(conf), "model=tinynet", "dataset=stripes", "method=magnitude", "logger=none"]
    assert main([*base, *argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"drive-run: error: {key}: ") and says in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def entry_point_package(root: Path, entry_points: str, module: str) -> None:
    (root / "rule").mkdir(exist_ok=True)
    (root / "rule" / "__init__.py").write_text(textwrap.dedent(module))
    info = root / "rule-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rule\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[drive_runner.methods]\n{entry_points}\n")


@pytest.mark.parametrize("entry, module, method, says", [
    ("broken = rule:Broken", "raise ImportError('rule needs a library this machine lacks')", "broken",
     "entry point 'broken' of package rule failed to load (ImportError: rule needs a library"),
    ("snip = rule:Twin", '''
        from drive_runner.methods import ScoringMethod

        class Twin(ScoringMethod):
            name = "snip"
        ''', "snip", "two methods are named snip: drive_runner.methods.snip.SnipPruning (drive_runner) and "
                     "rule.Twin (package rule)"),
])
def test_an_entry_point_that_fails_or_takes_a_used_name_is_refused_naming_its_package(tmp_path, entry, module,
                                                                                        method, says):
    entry_point_package(tmp_path, entry, module)
    common = ["dataset=digits", "model=lenet300", "trainer.epochs=1", "logger=none"]
    refused = run_cli(f"method={method}", *common, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert refused.returncode == 2 and refused.stderr.startswith("drive-run: error: method: ") and says in \
        refused.stderr, refused.stderr
    other = run_cli("method=magnitude", *common, "hydra.run.dir=run", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert other.returncode == 0, other.stderr  # the other methods still run


TORCHVISION_LIKE = '''
import numpy as np
from PIL import Image
from torch.utils.data import Dataset


class Shapes(Dataset):
    """A dataset class with torchvision's signature: PIL images, `classes` and `targets`, one split per `train`."""

    classes = ["bar", "dot", "ring", "unused"]

    def __init__(self, root, train=True, transform=None, download=False):
        self.transform = transform
        self.targets = [i % 3 for i in range(60 if train else 30)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        pixels = np.zeros((8, 8), dtype=np.uint8)
        pixels[self.targets[index]::3, :] = 255
        image = Image.fromarray(pixels)
        return (self.transform(image) if self.transform else image), self.targets[index]
'''


def test_a_torchvision_style_dataset_class_is_built_for_both_splits_with_to_tensor(project, tmp_path):
    root, conf = project
    (root / "myproj" / "tvlike.py").write_text(TORCHVISION_LIKE)
    (conf / "dataset" / "shapes.yaml").write_text("_target_: myproj.tvlike.Shapes\nroot: .\n")
    result = run_cli("--config-dir", str(conf), "dataset=shapes", "model=lenet300", "method=magnitude",
                     "trainer.epochs=1", "logger=none", "hydra.run.dir=run", cwd=tmp_path, env={"PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["dataset"] == "Shapes" and summary["status"] == "completed"
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "final.pt", weights_only=True)
    assert checkpoint["input_shape"] == [1, 8, 8] and checkpoint["num_classes"] == 4  # its `classes`, not its labels


def test_a_dataset_of_ones_own_gives_the_same_batches_in_memory_and_read_per_batch_and_shards_them(project,
                                                                                                 monkeypatch):
    from drive_runner.data import build_dataset

    root, _ = project
    monkeypatch.syspath_prepend(str(root))
    streamed = build_dataset({"_target_": "myproj.data.stripes"}, num_workers=0)
    held = build_dataset({"_target_": "myproj.data.stripes", "in_memory": True}, num_workers=0)
    assert (held.input_shape, held.num_classes, held.name) == ((1, 8, 8), 3, "stripes")
    assert type(streamed.train).__name__ == "DatasetSource" and type(held.train).__name__ == "InMemorySource"
    for shard in (None, (1, 2)):
        batches = [list(source.train.batches(32, shuffle=True, generator=torch.Generator().manual_seed(5),
                                             augment=True, shard=shard)) for source in (streamed, held)]
        assert len(batches[0]) == len(batches[1]) == 3
        for (x1, y1), (x2, y2) in zip(*batches):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
            assert len(y1) == (32 if shard is None else 16)


def test_a_run_of_ones_own_resumes_to_the_uninterrupted_result(project, tmp_path, monkeypatch):
    import drive_runner.runners.backprop as backprop
    from drive_runner.cli.compose import compose_config
    from drive_runner.pipeline import run

    root, conf = project
    monkeypatch.syspath_prepend(str(root))
    cfg = compose_config(["--config-dir", str(conf), "model=tinynet", "dataset=stripes", "method=snip",
                          "trainer.epochs=3", "logger=none", "hardware.device=cpu"])
    reference = run(cfg, tmp_path / "reference")
    real = backprop.evaluate

    class Crash(BaseException):
        """Stands for the process dying."""

    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(backprop, "evaluate", crash)
    with pytest.raises(Crash):
        run(cfg, tmp_path / "run")
    monkeypatch.setattr(backprop, "evaluate", real)
    resumed = run(cfg, tmp_path / "run")
    assert resumed["attempt"] == 2 and resumed["test_loss"] == reference["test_loss"]
    assert resumed["layers"] == reference["layers"]
