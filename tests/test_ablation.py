"""Mask ablations (prune.ablation) and IMP's per-level control (method.control)."""

import json
from pathlib import Path

import torch

from drive_runner.models import build_model
from drive_runner.pipeline import run
from tests.conftest import quick_cfg


def final(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "final.pt", weights_only=True)


def events(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["event"] == kind]


def initial_weights(cfg) -> dict:
    torch.manual_seed(0)
    return build_model(cfg.model, (1, 8, 8), 10).state_dict()


def test_shuffle_keeps_each_layers_count_on_the_same_weights_and_moves_the_survivors(tmp_path):
    found_cfg = quick_cfg("method=snip", "trainer.epochs=0")
    run(found_cfg, tmp_path / "found")
    run(quick_cfg("method=snip", "trainer.epochs=0", "prune.ablation=shuffle"), tmp_path / "shuffled")
    found, shuffled = final(tmp_path / "found"), final(tmp_path / "shuffled")
    init = initial_weights(found_cfg)
    for name, mask in found["masks"].items():
        moved = shuffled["masks"][name]
        assert int(moved.sum()) == int(mask.sum())  # the layer's density is kept
        assert not torch.equal(moved, mask)
        assert torch.equal(shuffled["state_dict"][name], init[name] * moved)  # the weights SNIP scored
    assert events(tmp_path / "shuffled", "ablation") and not events(tmp_path / "found", "ablation")


def test_reinit_keeps_the_mask_on_a_fresh_initialisation(tmp_path):
    cfg = quick_cfg("method=snip", "trainer.epochs=0")
    run(cfg, tmp_path / "found")
    run(quick_cfg("method=snip", "trainer.epochs=0", "prune.ablation=reinit"), tmp_path / "reinit")
    found, reinit = final(tmp_path / "found"), final(tmp_path / "reinit")
    init = initial_weights(cfg)
    for name, mask in found["masks"].items():
        assert torch.equal(reinit["masks"][name], mask)
        weights = reinit["state_dict"][name]
        assert torch.equal(weights == 0, ~mask | (weights == 0))  # zero wherever pruned
        assert not torch.equal(weights, init[name] * mask)
        # Drawn from the initialisation distribution (SNIP picked the large ones of the original draw).
        assert abs(float(weights[mask].std()) / float(init[name].std()) - 1) < 0.1


def test_imp_control_trains_every_levels_mask_beside_the_unchanged_ticket(tmp_path):
    ticket = run(quick_cfg("method=imp", "sparsity=0.5", "trainer.epochs=1"), tmp_path / "ticket")
    control = run(quick_cfg("method=imp", "sparsity=0.5", "trainer.epochs=1", "method.control=reinit"),
                  tmp_path / "control")
    levels = [row["density"] for row in events(tmp_path / "control", "prune_step")]
    controls = events(tmp_path / "control", "imp_control")
    assert [row["level"] for row in controls] == [1, 2, 3, 4]
    assert [row["density"] for row in controls] == levels and all(0 <= row["test_acc"] <= 1 for row in controls)
    # The ticket is the same with or without its control beside it.
    for name, mask in final(tmp_path / "ticket")["masks"].items():
        assert torch.equal(final(tmp_path / "control")["masks"][name], mask)
    assert ticket["test_acc"] == control["test_acc"]
