"""Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020; docs/magnitude-during-training.md).

Level 0 trains the dense network with the full recipe; every later level removes a fraction of the
surviving weights by trained magnitude, rewinds the complete state (weights, biases, BN parameters and
statistics) to step k, and retrains with a fresh optimizer, the LR schedule and data order resuming at k.

`method.control=reinit` (or `shuffle`) adds the Lottery Ticket paper's control: every level's mask is also
trained from a fresh initialisation (or as a layer-wise shuffled mask on the rewound weights), and its
accuracy is logged beside the ticket's (`imp_control` events); the ticket itself carries on unchanged.
"""

from __future__ import annotations

from drive_runner.errors import ConfigError
from drive_runner.pruning.ablation import ablate
from drive_runner.pruning.masks import MaskEngine, keep_count
from drive_runner.pruning.methods import PruningContext, PruningMethod, register_method
from drive_runner.pruning.schedules import imp_survivors
from drive_runner.train.loop import StepSnapshot

OUTPUT_LAYER_KEPT_DENSE = ("lenet", "vgg")  # open_lth presets; CIFAR ResNets prune their classifier


@register_method
class IterativeMagnitudePruning(PruningMethod):
    name = "imp"
    schedules = ("imp_levels",)
    default_schedule = "imp_levels"
    needs_session = True
    step_name = "level"

    def check_config(self, cfg) -> None:
        if int(cfg.trainer.epochs) == 0:
            raise ConfigError("trainer.epochs", "imp trains every level for trainer.epochs, so 0 finds no mask; "
                                                "give it epochs, or use method=magnitude to prune at initialisation")
        if self.warmup_epochs:
            raise ConfigError("method.warmup_epochs", "imp trains from initialisation in every level; use 0")
        if cfg.prune.scope != "global":
            raise ConfigError("prune.scope", "imp ranks all prunable weights together (open_lth); use global")
        if self.cfg.control != "none" and cfg.prune.ablation != "none":
            raise ConfigError("method.control", "a per-level control and prune.ablation together measure nothing "
                                                "clear; use one of them")

    def target_density(self, requested_density: float) -> float:
        return requested_density

    def excluded_tensors(self, model, model_name: str) -> list[str]:
        prune_output = self.cfg.prune_output_layer
        if prune_output is None:
            prune_output = not model_name.startswith(OUTPUT_LAYER_KEPT_DENSE)
        return [] if prune_output else [f"{model.classifier_name}.weight"]

    def level_survivors(self, engine: MaskEngine, density: float) -> list[int]:
        return imp_survivors(
            engine.total(), keep_count(engine.total(), density), float(self.schedule.fraction),
            bool(self.schedule.exact_target),
        )

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        levels = self.level_survivors(engine, density)
        return levels[-1] if levels else engine.total()

    def find_mask(self, ctx: PruningContext) -> None:
        session, engine = ctx.session, ctx.engine
        levels = self.level_survivors(engine, ctx.target_density)
        if not levels:
            return
        rewind_step = int(self.cfg.rewind_step)
        snapshot = StepSnapshot(rewind_step)
        session.callbacks.append(snapshot)
        self._train_level(ctx, 0)  # dense, keeping the state at the rewind step
        session.callbacks.remove(snapshot)
        rewind_state = ctx.initial_state if rewind_step == 0 else snapshot.state
        if rewind_state is None:
            raise ConfigError("method.rewind_step", f"step {rewind_step} is beyond the training run ({session.step} steps)")
        self._rewind_state = rewind_state
        for level, survivors in enumerate(levels):
            if level > 0:
                session.rewind(rewind_state, rewind_step)
                self._train_level(ctx, level)
            engine.prune_to_count({name: p.detach().abs() for name, p in engine.params.items()}, survivors)
            ctx.on_step(level + 1, len(levels), engine.density())
            if self.cfg.control != "none":
                self._train_control(ctx, level + 1, rewind_state, rewind_step)
        session.rewind(rewind_state, rewind_step)  # the final ticket trains in the sparse-training phase

    def weights_under_mask(self, before_pruning: dict) -> dict:
        return self._rewind_state

    def _train_control(self, ctx: PruningContext, level: int, rewind_state: dict, rewind_step: int) -> None:
        """This level's mask trained as the control variant; the ticket's mask is put back afterwards."""
        ticket = ctx.engine.mask_state()
        ablate(self.cfg.control, ctx, rewind_state, draw=level, step=rewind_step)
        history = ctx.session.train_until(int(ctx.session.cfg.epochs), f"imp-control-{level}")
        ctx.log("imp_control", level=level, control=self.cfg.control, density=ctx.engine.density(),
                test_acc=history[-1].get("test_top1") if history else None)
        ctx.engine.replace_masks(ticket)

    @staticmethod
    def _train_level(ctx: PruningContext, level: int) -> None:
        history = ctx.session.train_until(int(ctx.session.cfg.epochs), f"imp-level-{level}")
        ctx.log("imp_level", level=level, density=ctx.engine.density(),
                test_acc=history[-1].get("test_top1") if history else None)
