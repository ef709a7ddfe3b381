"""What the runners that train by backpropagation share: the mask engine, the batch size, one training session
for the whole run, and the steps every such run takes (dense warm-up, settling the mask, training on, the
final evaluation and checkpoint).

The session's optimizer and LR schedule run across all phases, so the warm-up and sparse training are two
stretches of one schedule. The training state is saved at every epoch's end, between pruning steps and at
a stop signal; a run launched again restores it and continues inside the phase it was in (each phase's
entry is recorded, so nothing is done or logged twice).
"""

from __future__ import annotations

import contextlib

import torch
from omegaconf import OmegaConf

from drive_runner.checkpoint import checkpoint_payload
from drive_runner.errors import ConfigError, MaskError
from drive_runner.instantiation import label
from drive_runner.memory.accounting import MB
from drive_runner.memory.budget import check_budget, choose_batch_size, enforce_on_cuda, measure
from drive_runner.models import build_model
from drive_runner.pruning.ablation import Ablation, ablate
from drive_runner.pruning.collapse import connectivity_report
from drive_runner.pruning.context import PruningContext, TrainingContext
from drive_runner.pruning.masks import MaskEngine, find_prunable, keep_count
from drive_runner.pruning.sampling import labelled_sample
from drive_runner.pruning.targets import most_extreme_target, target_density
from drive_runner.run_state import ModelState
from drive_runner.runners.base import Runner
from drive_runner.runners.records import BatchStream, Progress
from drive_runner.runners.result import memory_report, report_mask, result
from drive_runner.runners.setup import Setup
from drive_runner.train.loop import TrainingSession, early_stop, evaluate
from drive_runner.train.optim import with_warmup


class BackpropRunner(Runner):
    def __init__(self, setup: Setup, method):
        super().__init__(setup, method)
        cfg, model, data, console = setup.cfg, setup.model, setup.data, setup.console
        self.engine = MaskEngine(
            model, exclude=[*cfg.prune.exclude, *method.excluded_tensors(model, label(cfg.model))],
            include_bias=bool(cfg.prune.include_bias), scope=cfg.prune.scope, seed=setup.seed,
        )
        self.density = method.target_density(target_density(cfg))
        self.prunable_at_start = self.engine.total()
        console.line(
            f"{label(cfg.method)}: target sparsity {1 - self.density:.6g} of {self.engine.total():,} prunable weights "
            f"in {len(self.engine.targets)} tensors of {label(cfg.model)}, data {label(cfg.dataset)}, device {setup.device}"
        )
        self.trainer = with_warmup(cfg.trainer, method.warmup_epochs)  # the epochs and LR drops trained by
        self.batch = choose_batch_size(model, data.input_shape, data.num_classes, data.train.num_samples, cfg.trainer,
                                       cfg.hardware, setup.device)
        if self.batch.memory is not None:
            console.line(f"memory: batch {self.batch.batch_size} fits the {cfg.hardware.memory_budget_mb:g} MB budget "
                         f"(modelled peak {self.batch.memory.peak(self.batch.batch_size) / MB:.1f} MB, "
                         f"lr x {self.batch.lr_scale:g})")
        enforce_on_cuda(cfg.hardware.memory_budget_mb, setup.device)
        self._warn_about_the_budget()
        memory = self.batch.memory
        self.session = TrainingSession(
            model, data, self.trainer, device=setup.device, precision=cfg.hardware.precision, seed=setup.seed,
            engine=self.engine, progress=console, on_epoch=setup.tracker.epoch,
            on_evaluation=lambda record: setup.tracker.event("evaluation_step", **record), batch_size=self.batch.batch_size,
            lr_scale=self.batch.lr_scale, memory_static_bytes=memory.static + memory.margin if memory else None,
            acceleration=setup.acceleration,
        )
        self.progress = Progress()
        self.batches = BatchStream(data.train, self.session.batch_size, setup.seed)
        self.scoring = PruningContext(
            model=model, engine=self.engine, target_density=self.density, seed=setup.seed, device=setup.device,
            input_shape=data.input_shape, num_classes=data.num_classes, examples=self._examples,
            next_batches=self.batches.next, on_step=self._pruning_step,
        )
        self.training = TrainingContext(
            model=model, engine=self.engine, session=self.session, target_density=self.density, seed=setup.seed,
            device=setup.device, input_shape=data.input_shape, num_classes=data.num_classes,
            initial_state=self.session.snapshot(), reinitialised=setup.fresh_initialisations(), hardware=cfg.hardware,
            log=setup.tracker.event, warn=console.warn, on_step=self._pruning_step,
            mark_mask_fixed=lambda: self.progress.mask_fixed_at.append(setup.phases.since_start()),
        )
        for name, part in (("model", ModelState(model, self.engine)), ("session", self.session), ("method", method),
                           ("batches", self.batches), ("progress", self.progress), ("runner", self)):
            setup.state.register(name, part)
        setup.restore_state()
        self.session.at_boundary = self._step_boundary

    def _warn_about_the_budget(self) -> None:
        """What the config allows but a user rarely means: a batch larger than the training set, a warm-up that
        uses every epoch."""
        cfg, data, console = self.setup.cfg, self.setup.data, self.setup.console
        images = data.train.num_samples
        if self.batch.batch_size > images:
            console.warn(f"trainer.batch_size={self.batch.batch_size} is larger than the {images:,} training images of "
                         f"{label(cfg.dataset)}: every epoch is one batch of {images:,}")
        epochs = int(self.trainer.epochs)
        if self.method.prunes and 0 < self.method.warmup_epochs == epochs:
            console.warn(f"method.warmup_epochs={epochs} is the whole budget trainer.epochs={epochs}: the network is "
                         f"pruned after its last epoch and never trained sparse; give trainer.epochs more")

    # ------------------------------------------------------------------ checks before any work
    @classmethod
    def check(cls, cfg, method, model, input_shape, num_classes: int, memory: bool = True) -> None:
        warmup, epochs = method.warmup_epochs, cfg.trainer.epochs
        with_warmup(cfg.trainer, warmup)  # refuses a warm-up on top of a schedule without drops to move
        if warmup > epochs and cfg.trainer.warmup_in_budget:
            raise ConfigError("method.warmup_epochs", f"{label(cfg.method)} trains {warmup} dense epochs before pruning, "
                                                      f"more than trainer.epochs={epochs} (the warm-up is part of the "
                                                      "budget); set method.warmup_epochs=0 to prune at initialisation"
                                                      + ("" if epochs else " and evaluate without training"))
        cls._check_target(cfg, method, model)
        if memory:
            cls._check_memory_budget(cfg, model, input_shape, num_classes)

    @staticmethod
    def _check_target(cfg, method, model) -> None:
        """The model has something to prune, something stays prunable, and the target keeps one of its weights."""
        if method.prunes and not find_prunable(model):
            raise ConfigError("model", f"{label(cfg.model)} has no Conv2d or Linear weight, so there is nothing to prune")
        excluded = [*cfg.prune.exclude, *method.excluded_tensors(model, label(cfg.model))]
        prunable = find_prunable(model, excluded, bool(cfg.prune.include_bias))
        density = method.target_density(target_density(cfg))
        if density >= 1.0:  # the method removes no weight by count (dense, structured)
            return
        if not prunable:
            raise ConfigError("prune.exclude", f"every prunable tensor of {label(cfg.model)} is excluded "
                                               f"({', '.join(excluded)}); leave at least one")
        sizes = [t.param.numel() for t in prunable]
        layerwise = (method.scope() or cfg.prune.scope) == "layerwise"
        kept = sum(keep_count(n, density) for n in sizes) if layerwise else keep_count(sum(sizes), density)
        if kept == 0:
            sparsity, compression = most_extreme_target(max(sizes) if layerwise else sum(sizes))
            raise ConfigError(
                "compression" if cfg.compression is not None else "sparsity",
                f"the target density {density:.3g} keeps none of the {sum(sizes):,} prunable weights of "
                f"{label(cfg.model)}; the most that keeps one weight is sparsity={sparsity:.10g} "
                f"(compression={compression:.4g})")

    @staticmethod
    def _check_memory_budget(cfg, model, input_shape, num_classes: int) -> None:
        """A budget too small for batch 1, an explicit batch over it, or batch_size=auto without one."""

        memory = None
        if cfg.hardware.memory_budget_mb is not None:
            real = build_model(cfg.model, input_shape=input_shape, num_classes=num_classes)
            memory = measure(real, input_shape, num_classes, cfg.trainer, cfg.hardware, torch.device("cpu"))
        check_budget(memory, cfg.trainer, cfg.hardware)

    @classmethod
    def check_parallel(cls, cfg, world) -> None:
        if cfg.hardware.memory_budget_mb is not None:
            raise ConfigError("hardware.memory_budget_mb", "a memory budget is measured for one process; "
                                                           "start budgeted runs without torchrun")
        if cfg.trainer.batch_size != "auto" and int(cfg.trainer.batch_size) < world.size:
            raise ConfigError("trainer.batch_size", f"is the batch over all {world.size} processes and must be at "
                                                    f"least {world.size}; got {cfg.trainer.batch_size}")

    # ------------------------------------------------------------------ the steps runners are made of
    def warm_up(self) -> None:
        """Dense epochs before pruning (method.warmup_epochs), with the method's warm-up callbacks."""
        with self.setup.phases.measure("warmup"):
            if self.progress.enter("warmup"):
                self.setup.tracker.event("phase_start", phase="warmup", epochs=self.method.warmup_epochs)
            self.session.callbacks.extend(self.method.warmup_callbacks(self.training))
            self.session.train_until(self.method.warmup_epochs, "warmup")

    @contextlib.contextmanager
    def pruning(self):
        """The prune phase, timed; on first entry it records the weights a shuffled mask would sit on."""
        setup = self.setup
        with setup.phases.measure("prune"):
            if self.progress.enter("prune"):
                setup.tracker.event("phase_start", phase="prune", target_density=self.density)
                ablating = setup.cfg.prune.ablation != Ablation.none
                self.progress.before_pruning = self.session.snapshot() if ablating else None
            yield

    def settle_mask(self) -> dict:
        """The mask found before sparse training: its survivor count checked, ablated if asked, its connectivity
        reported and the mask saved (once; a resumed run only reads its connectivity again)."""
        cfg, progress = self.setup.cfg, self.progress
        if progress.mask_done:
            return connectivity_report(self.engine, self.setup.data.input_shape)
        self.check_survivors("after pruning")
        ablation = cfg.prune.ablation
        if ablation != Ablation.none:
            ablate(ablation, self.training, self.weights_under_mask(), draw=0, step=self.session.step)
            self.check_survivors(f"after the {ablation} ablation")
            self.setup.tracker.event("ablation", kind=str(ablation))
            self.setup.console.line(f"ablation: {ablation} applied to the mask found by {label(cfg.method)}")
        connectivity = self.report_mask()
        progress.mask_done, progress.before_pruning = True, None
        self.setup.state.save()
        return connectivity

    def weights_under_mask(self) -> dict:
        """The dense weights the found mask sits on: what a shuffled mask is put on."""
        return self.method.weights_under_mask(self.progress.before_pruning)

    def train_rest(self, callbacks: list) -> list[dict]:
        """Training to the end of the epoch budget on the same schedule; returns its epochs' metrics."""
        with self.setup.phases.measure("train"):
            if self.progress.enter("train"):
                self.setup.tracker.event("phase_start", phase="train", epochs=int(self.trainer.epochs)
                                         - self.session.epoch)
            self.session.callbacks.extend(callbacks)
            return self.session.train_until(int(self.trainer.epochs), "train")

    def finish(self, history: list[dict], connectivity: dict) -> dict:
        """The final evaluation, final.pt and the result."""
        setup, cfg = self.setup, self.setup.cfg
        data = setup.data
        with setup.phases.measure("eval"):
            final = evaluate(setup.model, data.test, batch_size=int(cfg.trainer.eval_batch_size), device=setup.device,
                             acceleration=setup.acceleration, forward=self.session.eval_forward())
        setup.tracker.event("evaluation", **final)
        setup.directory.save_checkpoint("final.pt", checkpoint_payload(
            OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True), setup.model, self.engine, data.input_shape,
            data.num_classes))
        outcome = result(cfg, setup.model, self.engine, data.input_shape, self.density, final, history, connectivity,
                         setup.phases, self.prunable_at_start)
        if self.progress.mask_fixed_at:  # the mask was fixed during training (GMP)
            outcome["timings_s"]["find_mask"] = self.progress.mask_fixed_at[-1]
        outcome["epochs"] = int(self.trainer.epochs)  # what was trained, a warm-up on top of the budget included
        outcome["memory"] = memory_report(self.batch, self.session, cfg.hardware.memory_budget_mb, setup.device)
        outcome.update(self.method.summary_extras())
        outcome.update(early_stop(self.phase_records("train", history)))
        if history and "val_top1" in history[-1]:
            outcome["val_acc"] = history[-1]["val_top1"]
        return outcome

    def phase_records(self, phase: str, history: list[dict]) -> list[dict]:
        """A phase's evaluations: its epochs' and those between its epochs (trainer.eval_every_steps)."""
        return [*history, *(record for record in self.session.evaluations if record["phase"] == phase)]

    def check_survivors(self, when: str) -> None:
        """The achieved sparsity must be exactly what the method promised; anything else fails the run."""
        engine = self.engine
        engine.verify()
        expected = self.method.expected_survivors(engine, self.density)
        if engine.survivors() != expected:
            raise MaskError(f"{when}: {engine.survivors()} weights survive but the target is {expected} "
                            f"(sparsity {engine.sparsity():.6f} vs {1 - expected / engine.total():.6f})")

    def report_mask(self) -> dict:
        setup = self.setup
        return report_mask(self.engine, setup.data.input_shape, setup.directory, setup.tracker, setup.console)

    # ------------------------------------------------------------------ boundaries and records
    def state_dict(self) -> dict:
        """The runner's own part of the training state (a runner that prunes in levels has one)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from the runner's saved part of the training state."""

    def _step_boundary(self, end_of_epoch: bool) -> None:
        """After an optimizer step: the training state is saved at every epoch's end, and at a stop signal
        the run saves it (if it has not just done so) and stops."""
        state, stop = self.setup.state, self.setup.stop
        if end_of_epoch:
            state.save()
            stop.check(lambda: None)
        else:
            stop.check(state.save)

    def _pruning_step(self, step: int, total: int, density: float) -> None:
        self.setup.tracker.event("prune_step", step=step, density=density)
        self.setup.console.prune_step(self.method.step_name, step, total, density)
        if not self.session.in_epoch:  # inside an epoch (GMP) the training step's boundary follows
            self.setup.state.save_if_due()
            self.setup.stop.check(self.setup.state.save)

    def _examples(self, count: int, balanced: bool):
        """The same seeded labelled sample on every call, as SNIP and GraSP score one fixed batch."""
        return labelled_sample(self.setup.data.train, count, balanced=balanced,
                               generator=torch.Generator().manual_seed(self.setup.seed + 17))
