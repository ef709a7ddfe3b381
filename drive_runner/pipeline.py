"""The four phases of a run: dense warm-up -> pruning -> sparse training -> evaluation.

`run(cfg, run_dir)` is free of Hydra so it can be driven from Python and tests as well as from the CLI.
The run's training state (run_state.py) is saved at the end of every epoch, between pruning steps and
at a stop signal; launched again into the same directory, a run restores it and continues inside the
phase it was in (each phase's entry is recorded, so nothing is done or logged twice). masks.pt is
written after pruning, final.pt and summary.json at the end.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from drive_runner import distributed
from drive_runner.checkpoint import checkpoint_payload, exit_checkpoint_payload
from drive_runner.data import build_dataset
from drive_runner.errors import ConfigError, DriveRunnerError, MaskError
from drive_runner.interrupts import Interrupted, StopRequests
from drive_runner.memory.accounting import MB
from drive_runner.memory.budget import BatchChoice, choose_batch_size, enforce_on_cuda
from drive_runner.memory.neuroflux import NeuroFluxTrainer
from drive_runner.models import build_model
from drive_runner.pruning.ablation import ablate
from drive_runner.pruning.collapse import connectivity_report
from drive_runner.pruning.masks import MaskEngine
from drive_runner.pruning.methods import PruningContext, build_method
from drive_runner.pruning.sampling import batch_stream, labelled_sample
from drive_runner.pruning.targets import target_density
from drive_runner.run_state import (STATE_FILE, Attempt, DirectoryLock, ModelState, RandomState, RunState, begin_attempt,
                                    read_state)
from drive_runner.tracking.console import Console, SilentConsole
from drive_runner.tracking.rundir import FollowerRunDirectory, RunDirectory
from drive_runner.tracking.tracker import Tracker
from drive_runner.tracking.wandb_logger import WandbLogger
from drive_runner.validation import validate
from drive_runner.train.flops import total_flops
from drive_runner.train.acceleration import Acceleration, resolve_device, wants_data_on_device
from drive_runner.train.loop import TrainingSession, evaluate


@dataclass
class JobInfo:
    """Facts about the job that come from outside the config (Hydra or the caller)."""

    group: str | None = None  # sweep or experiment name, the W&B group
    overrides: list[str] = field(default_factory=list)
    in_sweep: bool = False  # one result line instead of the full table: the sweep prints its own


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Phases:
    """Wall-clock of named phases, in seconds."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()
        self._first_phase: float | None = None
        self._current: tuple[str, float] | None = None
        self._earlier_total = self._earlier_since_start = 0.0  # what earlier attempts measured up to their state

    @contextlib.contextmanager
    def measure(self, name: str):
        start = time.perf_counter()
        self._first_phase = self._first_phase or start
        self._current = (name, start)
        try:
            yield
        finally:
            self._current = None
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        return self._earlier_total + time.perf_counter() - self._started

    def since_start(self) -> float:
        """Seconds since the first measured phase began (the model was initialised just before)."""
        return self._earlier_since_start + (time.perf_counter() - self._first_phase if self._first_phase else 0.0)

    def state_dict(self) -> dict:
        """The time spent so far, the running phase included: a resumed run's timings count the work
        that led to its result, not the work an interruption threw away."""
        seconds = dict(self.seconds)
        if self._current:
            name, start = self._current
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        return {"seconds": seconds, "total": self.total(), "since_start": self.since_start()}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = dict(state["seconds"])
        self._earlier_total, self._earlier_since_start = state["total"], state["since_start"]


class _Progress:
    """Which phases the run has entered and what it carries between them, as part of its training state."""

    def __init__(self):
        self.entered: list[str] = []
        self.mask_done = False  # the mask is found, checked, ablated if asked, reported and saved
        self.before_pruning: dict | None = None  # the weights as pruning began (what a shuffled mask sits on)
        self.mask_fixed_at: list[float] = []  # when a method that prunes while training fixed its mask

    def enter(self, phase: str) -> bool:
        """True the first time a phase is entered; False when a resumed run is already inside or past it."""
        if phase in self.entered:
            return False
        self.entered.append(phase)
        return True

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def run(cfg: DictConfig, run_dir: str | Path, job: JobInfo | None = None, console: Console | None = None) -> dict:
    """Run one job, or continue it from its saved training state; returns its summary. A job that already
    completed in `run_dir` is not run again. On failure the summary says `failed` and the error is
    re-raised; on a stop signal it says `interrupted` and Interrupted is raised."""
    validate(cfg)
    job = job or JobInfo()
    world = distributed.from_environment()
    _check_parallel_config(cfg, world)
    distributed.start(world, resolve_device(cfg.hardware, world.local_rank))
    try:
        console = (console or Console()) if world.is_main else SilentConsole()
        directory = RunDirectory(run_dir) if world.is_main else FollowerRunDirectory(run_dir)
        with DirectoryLock(directory) if world.is_main else contextlib.nullcontext():
            attempt = _shared_attempt(directory, OmegaConf.to_container(cfg, resolve=True), cfg.resume)
            if attempt.finished is not None:
                console.line(f"already done: {directory.path} holds this job's completed run "
                             f"(test_acc {attempt.finished.get('test_acc', float('nan')):.4f}); nothing to run")
                return attempt.finished
            return _attempt(cfg, directory, attempt, job, console)
    finally:
        distributed.stop()


def _check_parallel_config(cfg: DictConfig, world: distributed.World) -> None:
    """What data parallelism cannot do, refused before any process group or directory exists."""
    if not world.parallel:
        return
    if cfg.trainer.name == "neuroflux":
        raise ConfigError("trainer", "neuroflux trains block by block in one process; start it without torchrun")
    if cfg.hardware.memory_budget_mb is not None:
        raise ConfigError("hardware.memory_budget_mb", "a memory budget is measured for one process; "
                                                       "start budgeted runs without torchrun")
    if cfg.trainer.batch_size != "auto" and int(cfg.trainer.batch_size) < world.size:
        raise ConfigError("trainer.batch_size", f"is the batch over all {world.size} processes and must be at least "
                                                f"{world.size}; got {cfg.trainer.batch_size}")


def _shared_attempt(directory: RunDirectory, config: dict, resume: str) -> Attempt:
    """Rank 0 decides what this launch does with the directory (and moves earlier records); the other
    ranks follow its decision and read the same training state. A refusal on rank 0 is raised on all."""
    world = distributed.current()
    if not world.parallel:
        return begin_attempt(directory, config, resume)
    decision: Attempt | BaseException
    if world.is_main:
        try:
            decision = begin_attempt(directory, config, resume)
        except Exception as error:  # noqa: BLE001 - every rank raises it below
            decision = error
        shared = distributed.broadcast_value(
            decision if isinstance(decision, BaseException) else (decision.number, decision.saved is not None,
                                                                  decision.finished))
    else:
        shared = distributed.broadcast_value(None)
    if isinstance(shared, BaseException):
        raise shared
    if world.is_main:
        return decision
    number, has_state, finished = shared
    return Attempt(number, read_state(directory.checkpoints / STATE_FILE) if has_state else None, finished)


def _attempt(cfg: DictConfig, directory: RunDirectory, attempt: Attempt, job: JobInfo, console: Console) -> dict:
    directory.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    phases = _Phases()
    summary: dict = {
        "method": cfg.method.name, "model": cfg.model.name, "dataset": cfg.dataset.name, "seed": int(cfg.seed),
        "overrides": list(job.overrides), "run_dir": str(directory.path),
    }
    logger_cfg = cfg.logger if distributed.current().is_main else OmegaConf.merge(cfg.logger, {"mode": "disabled"})
    wandb = WandbLogger(
        logger_cfg, directory.path, config=OmegaConf.to_container(cfg, resolve=True),
        name=f"{cfg.method.name}-{cfg.model.name}-{cfg.dataset.name}-d{target_density(cfg):.4g}-seed{cfg.seed}",
        group=cfg.logger.group or job.group, warn=console.warn,
        run_id=attempt.saved["tracker"]["wandb_id"] if attempt.saved else None,
    )
    tracker = Tracker(directory, console, wandb)
    summary["attempt"] = attempt.number
    if attempt.saved:
        console.line(f"resuming attempt {attempt.number} from the training state saved "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(attempt.saved['saved_at']))} "
                     f"(earlier attempts' records are in {directory.path / 'attempts'})")
        if wandb.mode == "offline":
            tracker.replay_to_wandb()
    try:
        with StopRequests() as stop:
            summary.update(_run_phases(cfg, directory, tracker, console, phases, attempt.saved, stop))
        summary["timings_s"]["total"] = phases.total()
        summary["status"] = "completed"
        directory.write_summary(summary)
        directory.remove_checkpoint(STATE_FILE)  # final.pt holds the finished model
        _publish(summary, directory, wandb)
        console.result_line(summary) if job.in_sweep else console.summary_table(summary)
        wandb.finish()
        return summary
    except Interrupted as interrupted:
        summary["timings_s"] = {**phases.seconds, "total": phases.total()}
        summary["status"] = "interrupted"
        summary["signal"] = signal_name(interrupted.signum)
        directory.write_summary(summary)
        tracker.event("interrupted", signal=summary["signal"])
        wandb.finish(interrupted_code=interrupted.exit_code)
        console.line(f"interrupted by {summary['signal']}: state saved in {directory.checkpoints / STATE_FILE}; "
                     "the same command continues the run")
        raise
    except BaseException as error:
        summary["timings_s"] = {**phases.seconds, "total": phases.total()}
        summary["error"] = f"{type(error).__name__}: {error}" if not isinstance(error, DriveRunnerError) else str(error)
        if not isinstance(error, DriveRunnerError):
            directory.write_error(traceback.format_exc())
        summary["status"] = "failed"
        directory.write_summary(summary)
        tracker.event("failed", error=summary["error"])
        wandb.finish(failed=True)
        raise


def _run_phases(cfg, directory: RunDirectory, tracker: Tracker, console: Console, phases: _Phases,
                saved: dict | None, stop: StopRequests) -> dict:
    seed = int(cfg.seed)
    seed_everything(seed)
    device = resolve_device(cfg.hardware, distributed.current().local_rank)
    if cfg.hardware.threads:
        torch.set_num_threads(int(cfg.hardware.threads))

    data_on_device = wants_data_on_device(cfg.hardware, device)
    dataset_cfg = cfg.dataset
    if "in_memory" in dataset_cfg and dataset_cfg.in_memory is None:  # decoded into memory when it goes to the GPU
        dataset_cfg = OmegaConf.merge(dataset_cfg, {"in_memory": data_on_device})
    data = build_dataset(dataset_cfg, seed=seed, num_workers=int(cfg.hardware.num_workers))
    torch.manual_seed(seed)  # the initialisation depends on the seed alone, not on what the data loader drew
    model = build_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes).to(device)
    acceleration = Acceleration.from_config(cfg.hardware, device, model)
    acceleration.configure_backends(cfg.hardware)
    acceleration.prepare_model(model)
    if acceleration.data_on_device:
        data = data.to(device)
    if cfg.trainer.name == "neuroflux":
        return _run_neuroflux(cfg, model, data, device, directory, tracker, console, phases, saved, stop)
    method = build_method(cfg.method, cfg.schedule)
    engine = MaskEngine(
        model, exclude=[*cfg.prune.exclude, *method.excluded_tensors(model, cfg.model.name)],
        include_bias=bool(cfg.prune.include_bias), scope=cfg.prune.scope, seed=seed,
    )
    density = method.target_density(target_density(cfg))
    prunable_at_start = engine.total()
    console.line(
        f"{cfg.method.name}: target sparsity {1 - density:.6g} of {engine.total():,} prunable weights in "
        f"{len(engine.targets)} tensors of {cfg.model.name}, data {cfg.dataset.name}, device {device}"
    )
    batch = choose_batch_size(model, data.input_shape, data.num_classes, data.train.num_samples, cfg.trainer,
                              cfg.hardware, device)
    if batch.memory is not None:
        console.line(f"memory: batch {batch.batch_size} fits the {cfg.hardware.memory_budget_mb:g} MB budget "
                     f"(modelled peak {batch.memory.peak(batch.batch_size) / MB:.1f} MB, lr x {batch.lr_scale:g})")
    enforce_on_cuda(cfg.hardware.memory_budget_mb, device)
    session = TrainingSession(
        model, data, cfg.trainer, device=device, precision=cfg.hardware.precision, seed=seed, engine=engine,
        progress=console, on_epoch=tracker.epoch, batch_size=batch.batch_size, lr_scale=batch.lr_scale,
        memory_static_bytes=batch.memory.static + batch.memory.margin if batch.memory else None,
        acceleration=acceleration,
    )
    progress = _Progress()
    batches = _BatchStream(data.train, session.batch_size, seed)
    context = PruningContext(
        model=model, engine=engine, target_density=density, seed=seed, device=device,
        input_shape=data.input_shape, num_classes=data.num_classes,
        examples=_example_sampler(data.train, seed), next_batches=batches.next,
        session=session, initial_state=session.snapshot(),
        reinitialised=_fresh_initialisations(cfg.model, data.input_shape, data.num_classes, seed),
        log=tracker.event, mark_mask_fixed=lambda: progress.mask_fixed_at.append(phases.since_start()),
        warn=console.warn, hardware=cfg.hardware,
    )
    state = RunState(directory)
    for name, part in (("model", ModelState(model, engine)), ("session", session), ("method", method),
                       ("batches", batches), ("progress", progress), ("timings", phases), ("tracker", tracker),
                       ("random", RandomState())):
        state.register(name, part)
    if saved:
        state.restore(saved)
    session.at_boundary = lambda end_of_epoch: _step_boundary(state, stop, end_of_epoch)

    def pruning_step(step: int, total: int, achieved: float) -> None:
        _pruning_step(tracker, console, method.step_name, step, total, achieved)
        if not session.in_epoch:  # inside an epoch (GMP) the training step's boundary follows
            state.save_if_due()
            stop.check(state.save)

    context.on_step = pruning_step
    total_epochs = int(cfg.trainer.epochs)

    # Phase 1: dense warm-up.
    with phases.measure("warmup"):
        if progress.enter("warmup"):
            tracker.event("phase_start", phase="warmup", epochs=method.warmup_epochs)
        session.callbacks.extend(method.warmup_callbacks(context))
        session.train_until(method.warmup_epochs, "warmup")

    # Phase 2: pruning (and an ablation of the mask found, if asked for).
    with phases.measure("prune"):
        if progress.enter("prune"):
            tracker.event("phase_start", phase="prune", target_density=density)
            progress.before_pruning = session.snapshot() if cfg.prune.ablation != "none" else None
        if not progress.mask_done:
            method.find_mask(context)
    if not method.prunes_during_training:
        if not progress.mask_done:
            _check_survivors(engine, method.expected_survivors(engine, density), "after pruning")
            if cfg.prune.ablation != "none":
                ablate(cfg.prune.ablation, context, method.weights_under_mask(progress.before_pruning), draw=0,
                       step=session.step)
                _check_survivors(engine, method.expected_survivors(engine, density),
                                 f"after the {cfg.prune.ablation} ablation")
                tracker.event("ablation", kind=cfg.prune.ablation)
                console.line(f"ablation: {cfg.prune.ablation} applied to the mask found by {cfg.method.name}")
            connectivity = _mask_found(engine, data, directory, tracker, console)
            progress.mask_done, progress.before_pruning = True, None
            state.save()
        else:
            connectivity = connectivity_report(engine, data.input_shape)

    # Phase 3: sparse training, to the end of the epoch budget on the same schedule.
    with phases.measure("train"):
        if progress.enter("train"):
            tracker.event("phase_start", phase="train", epochs=total_epochs - session.epoch)
        session.callbacks.extend(method.training_callbacks(context))
        history = session.train_until(total_epochs, "train")
    _check_survivors(engine, method.expected_survivors(engine, density), "after training")
    if method.prunes_during_training:
        connectivity = _mask_found(engine, data, directory, tracker, console)

    # Phase 4: evaluation.
    with phases.measure("eval"):
        final = evaluate(model, data.test, batch_size=int(cfg.trainer.eval_batch_size), device=device,
                         acceleration=acceleration, forward=session.eval_forward())
    tracker.event("evaluation", **final)
    directory.save_checkpoint("final.pt", checkpoint_payload(
        OmegaConf.to_container(cfg.model, resolve=True), model, engine, data.input_shape, data.num_classes))

    result = _result(cfg, model, engine, data, density, final, history, connectivity, phases, prunable_at_start)
    if method.structured:
        # Structured methods remove channels without a sparsity target.
        result["target_sparsity"] = result["target_compression"] = None
    if progress.mask_fixed_at:  # the mask was fixed during training (GMP)
        result["timings_s"]["find_mask"] = progress.mask_fixed_at[-1]
    result["memory"] = _memory_report(batch, session, cfg.hardware.memory_budget_mb, device)
    result.update(method.summary_extras())
    return result


def _memory_report(batch: BatchChoice, session: TrainingSession, budget_mb: float | None, device) -> dict:
    report = batch.report(budget_mb)
    if batch.memory is not None:
        report["measured_peak_mb"] = session.measured_peak_bytes / MB  # the largest step actually trained
        report["within_budget"] = session.measured_peak_bytes <= budget_mb * MB
    if device.type == "cuda":
        report["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / MB  # allocator view, context excluded
    return report


def _run_neuroflux(cfg, model, data, device, directory: RunDirectory, tracker: Tracker, console: Console,
                   phases: _Phases, saved: dict | None, stop: StopRequests) -> dict:
    """NeuroFlux replaces warm-up, pruning and training: blocks trained locally under the memory budget;
    the deployed model is the chosen early exit. Its training state is saved after every block, and a
    resumed run continues with the first block that had not finished."""
    console.line(f"neuroflux: {cfg.model.name} on {cfg.dataset.name}, device {device}")
    enforce_on_cuda(cfg.hardware.memory_budget_mb, device)
    trainer = NeuroFluxTrainer(model, data, cfg.trainer, cfg.hardware, device=device, seed=int(cfg.seed),
                               run_dir=directory.path, log=tracker.event, line=console.line, warn=console.warn)
    state = RunState(directory)
    for name, part in (("neuroflux", trainer), ("timings", phases), ("tracker", tracker), ("random", RandomState())):
        state.register(name, part)
    if saved:
        state.restore(saved)
    trainer.at_block_end = state.save
    trainer.at_step = lambda: stop.check(lambda: None)  # mid-block, the state of the last finished block stands
    with phases.measure("train"):
        outcome = trainer.fit()
    exit_model = outcome.exit_model
    with phases.measure("eval"):
        final = evaluate(exit_model, data.test, batch_size=int(cfg.trainer.eval_batch_size), device=device,
                         precision=cfg.hardware.precision)
    tracker.event("evaluation", **final)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    directory.save_checkpoint("exit.pt", exit_checkpoint_payload(
        model_cfg, exit_model, outcome.exit_spec, data.input_shape, data.num_classes))
    engine = MaskEngine(exit_model)  # dense: for the per-layer report of the deployed model
    connectivity = connectivity_report(engine, data.input_shape)
    result = _result(cfg, exit_model, engine, data, 1.0, final, [], connectivity, phases, engine.total())
    chosen = outcome.report["exits"][outcome.report["chosen_exit"]]
    console.line(f"neuroflux: exit after unit {chosen['unit']} ({chosen['params']:,} of "
                 f"{outcome.report['full_model_params']:,} parameters), test_acc {final['top1']:.4f}")
    result["neuroflux"] = outcome.report
    return result


def _step_boundary(state: RunState, stop: StopRequests, end_of_epoch: bool) -> None:
    """After an optimizer step: the training state is saved at every epoch's end, and at a stop signal
    the run saves it (if it has not just done so) and stops."""
    if end_of_epoch:
        state.save()
        stop.check(lambda: None)
    else:
        stop.check(state.save)


def _pruning_step(tracker: Tracker, console: Console, step_name: str, step: int, total: int, density: float) -> None:
    tracker.event("prune_step", step=step, density=density)
    console.prune_step(step_name, step, total, density)


def _fresh_initialisations(model_cfg, input_shape, num_classes: int, seed: int):
    """The k-th independent re-initialisation of the model (a CPU state dict), leaving the run's own
    random streams untouched."""

    def draw(index: int) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + 900_001 + index)
            return build_model(model_cfg, input_shape, num_classes).state_dict()

    return draw


def _example_sampler(source, seed: int):
    """The same seeded labelled sample on every call, as SNIP and GraSP score one fixed batch."""

    def examples(count: int, balanced: bool):
        return labelled_sample(source, count, balanced=balanced, generator=torch.Generator().manual_seed(seed + 17))

    return examples


class _BatchStream:
    """Fresh mini-batches from a dedicated stream, independent of the training data order (DRIVE); its
    position is part of the training state, so a resumed run draws the batches it would have drawn."""

    def __init__(self, source, batch_size: int, seed: int):
        self._source, self._batch_size, self._seed = source, batch_size, seed
        self._stream = None
        self.drawn = 0

    def next(self, count: int):
        if self._stream is None:
            self._stream = batch_stream(self._source, self._batch_size, torch.Generator().manual_seed(self._seed + 104_729))
            for _ in range(self.drawn):  # replay the draws of earlier attempts
                next(self._stream)
        self.drawn += count
        return [next(self._stream) for _ in range(count)]

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])


def _mask_found(engine: MaskEngine, data, directory: RunDirectory, tracker: Tracker, console: Console) -> dict:
    """The final mask: its connectivity reported, the mask saved."""
    connectivity = connectivity_report(engine, data.input_shape)
    _report_connectivity(connectivity, engine, tracker, console)
    directory.save_checkpoint("masks.pt", engine.mask_state())
    return connectivity


def _check_survivors(engine: MaskEngine, expected: int, when: str) -> None:
    """The achieved sparsity must be exactly what the method promised; anything else fails the run."""
    engine.verify()
    if engine.survivors() != expected:
        raise MaskError(
            f"{when}: {engine.survivors()} weights survive but the target is {expected} "
            f"(sparsity {engine.sparsity():.6f} vs {1 - expected / engine.total():.6f})"
        )


def _report_connectivity(connectivity: dict, engine: MaskEngine, tracker: Tracker, console: Console) -> None:
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


def _result(cfg, model, engine, data, density, final, history, connectivity, phases: _Phases, prunable_at_start: int) -> dict:
    layers = engine.layer_stats()
    prunable_ids = {id(t.param) for t in engine.targets}
    params_total = sum(p.numel() for p in model.parameters())
    params_unprunable = sum(p.numel() for p in model.parameters() if id(p) not in prunable_ids)
    flops_dense, flops_sparse = total_flops(model, data.input_shape)
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
        "ablation": cfg.prune.ablation,
        "epochs": int(cfg.trainer.epochs),
        "warmup_epochs": int(cfg.method.warmup_epochs),
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


def _publish(summary: dict, directory: RunDirectory, wandb: WandbLogger) -> None:
    """The result to W&B: summary values and the checkpoint and mask as one artifact."""
    wandb.update_summary({k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))})
    wandb.log_files(
        f"model-{summary['method']}-{summary['model']}-{summary['dataset']}-seed{summary['seed']}",
        "model", [directory.checkpoints / "final.pt", directory.checkpoints / "masks.pt"],
    )
