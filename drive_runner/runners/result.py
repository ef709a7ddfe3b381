"""The result a run reports in summary.json: accuracy, the sparsity it reached, parameters, FLOPs, layer
densities, connectivity, timings and memory; and the connectivity of a found mask, reported and saved."""

from __future__ import annotations

import math

import torch

from drive_runner.memory.accounting import MB
from drive_runner.memory.budget import BatchChoice
from drive_runner.pruning.collapse import connectivity_report
from drive_runner.pruning.masks import MaskEngine
from drive_runner.runners.records import Phases
from drive_runner.train.flops import total_flops


def result(cfg, model, engine: MaskEngine, input_shape, density: float, final: dict, history: list[dict],
           connectivity: dict, phases: Phases, prunable_at_start: int) -> dict:
    layers = engine.layer_stats()
    prunable_ids = {id(t.param) for t in engine.targets}
    params_total = sum(p.numel() for p in model.parameters())
    params_unprunable = sum(p.numel() for p in model.parameters() if id(p) not in prunable_ids)
    flops_dense, flops_sparse = total_flops(model, input_shape)
    achieved_density = engine.survivors() / prunable_at_start  # structured pruning shrinks N itself
    tested = [h["test_top1"] for h in history if "test_top1" in h]
    return {
        "target_sparsity": round(1.0 - density, 12),
        "target_compression": round(math.log10(1.0 / density), 6) if density > 0 else None,
        "achieved_sparsity": 1.0 - achieved_density,
        "achieved_compression": math.log10(1.0 / achieved_density) if achieved_density > 0 else None,
        "test_acc": final["top1"],
        "test_top5": final["top5"],
        "test_loss": final["loss"],
        "best_test_acc": max(tested, default=final["top1"]),
        "ablation": str(cfg.prune.ablation),
        "epochs": int(cfg.trainer.epochs),
        "warmup_epochs": int(cfg.method.get("warmup_epochs", 0)),
        "params_total": params_total,
        "params_prunable": engine.total(),
        "params_unprunable": params_unprunable,
        # Parameters that remain: non-zero prunable weights plus every unprunable parameter (counted dense).
        "params_nonzero": sum(layer["nonzero"] for layer in layers) + params_unprunable,
        "flops_dense": flops_dense,
        "flops_sparse": flops_sparse,
        "layers": [{k: layer[k] for k in ("name", "numel", "nonzero", "survivors", "density")} for layer in layers],
        **connectivity,
        "timings_s": {
            "warmup": phases.seconds.get("warmup", 0.0),
            "prune": phases.seconds.get("prune", 0.0),
            "find_mask": phases.seconds.get("warmup", 0.0) + phases.seconds.get("prune", 0.0),
            "train": phases.seconds.get("train", 0.0),
            "eval": phases.seconds.get("eval", 0.0),
        },
    }


def memory_report(batch: BatchChoice, session, budget_mb: float | None, device) -> dict:
    report = batch.report(budget_mb)
    if batch.memory is not None:
        report["measured_peak_mb"] = session.measured_peak_bytes / MB  # the largest step actually trained
        report["within_budget"] = session.measured_peak_bytes <= budget_mb * MB
    if device.type == "cuda":
        report["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / MB  # allocator view, context excluded
    return report


def report_mask(engine: MaskEngine, input_shape, directory, tracker, console) -> dict:
    """The final mask: its connectivity reported (collapsed layers, disconnection), the mask saved."""
    connectivity = connectivity_report(engine, input_shape)
    tracker.event(
        "pruned", survivors=engine.survivors(), sparsity=engine.sparsity(),
        min_layer_survivors=connectivity["min_layer_survivors"], disconnected=connectivity["disconnected"],
        collapsed_layers=connectivity["collapsed_layers"], layers=engine.layer_stats(),
    )
    console.line(f"pruned: {engine.survivors():,} of {engine.total():,} weights survive (sparsity {engine.sparsity():.6f})")
    if connectivity["collapsed_layers"]:
        console.warn(f"LAYER COLLAPSE: no surviving weight in {', '.join(connectivity['collapsed_layers'])}")
    if connectivity["disconnected"]:
        console.warn("DISCONNECTED: no path of surviving weights joins the input to any output")
    directory.save_checkpoint("masks.pt", engine.mask_state())
    return connectivity
