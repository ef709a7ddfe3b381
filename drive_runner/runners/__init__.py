"""Runners: one per kind of method, each taking a run from its setup to its result.

    mask_first.MaskFirstRunner          the mask is found before sparse training (pruning at initialisation, DRIVE)
    levels.LevelsRunner                 levels of training, pruning and rewinding (IMP)
    during_training.DuringTrainingRunner  pruning while the network trains (GMP, PruneTrain)
    blockwise.BlockwiseRunner           block-wise local learning under a memory budget (trainer=neuroflux)

The method says which runner it needs (its `runner`); a trainer config that trains in its own way names its
runner by `_target_` (trainer=neuroflux) and then runs the job whatever the method.
"""

from __future__ import annotations

from drive_runner.instantiation import locate


def runner_for(cfg, method) -> type:
    """The runner of a job: its trainer's own, if the trainer config names one, else the one its method needs."""
    target = cfg.trainer.get("_target_")
    return locate(str(target), "trainer._target_") if target else method.runner
