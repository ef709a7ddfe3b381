"""The runner of NeuroFlux (`trainer=neuroflux`; Saikumar & Varghese, EuroSys '24; docs/neuroflux.md): the
network trained block by block with local losses under hardware.memory_budget_mb, instead of warm-up,
pruning and sparse training; the deployed model is the chosen early exit.

    blocks trained one after another (the state saved after each)  ->  the exit evaluated and saved

Its training state is saved after every block, and a resumed run continues with the first block that had
not finished.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from drive_runner.checkpoint import exit_checkpoint_payload
from drive_runner.errors import ConfigError
from drive_runner.instantiation import label
from drive_runner.memory.budget import enforce_on_cuda
from drive_runner.memory.neuroflux import NeuroFluxTrainer
from drive_runner.models.structure import splits_into_units
from drive_runner.pruning.collapse import connectivity_report
from drive_runner.pruning.masks import MaskEngine
from drive_runner.runners.base import Runner
from drive_runner.runners.result import result
from drive_runner.train.loop import evaluate


class BlockwiseRunner(Runner):
    sparsity_target = False  # a dense network, trained block by block

    def __init__(self, setup, method):
        super().__init__(setup, method)
        cfg = setup.cfg
        setup.console.line(f"neuroflux: {label(cfg.model)} on {label(cfg.dataset)}, device {setup.device}")
        enforce_on_cuda(cfg.hardware.memory_budget_mb, setup.device)
        self.trainer = NeuroFluxTrainer(setup.model, setup.data, cfg.trainer, cfg.hardware, device=setup.device,
                                        seed=setup.seed, run_dir=setup.directory.path, log=setup.tracker.event,
                                        line=setup.console.line, warn=setup.console.warn)
        setup.state.register("neuroflux", self.trainer)
        setup.restore_state()
        self.trainer.at_block_end = setup.state.save
        self.trainer.at_step = lambda: setup.stop.check(lambda: None)  # mid-block, the last finished block's state stands

    def run(self) -> dict:
        setup, cfg, data = self.setup, self.setup.cfg, self.setup.data
        with setup.phases.measure("train"):
            outcome = self.trainer.fit()
        exit_model = outcome.exit_model
        with setup.phases.measure("eval"):
            final = evaluate(exit_model, data.test, batch_size=int(cfg.trainer.eval_batch_size), device=setup.device,
                             precision=cfg.hardware.precision)
        setup.tracker.event("evaluation", **final)
        setup.directory.save_checkpoint("exit.pt", exit_checkpoint_payload(
            OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True), exit_model, outcome.exit_spec, data.input_shape,
            data.num_classes))
        engine = MaskEngine(exit_model)  # dense: for the per-layer report of the deployed model
        connectivity = connectivity_report(engine, data.input_shape)
        summary = result(cfg, exit_model, engine, data.input_shape, 1.0, final, [], connectivity, setup.phases,
                         engine.total())
        chosen = outcome.report["exits"][outcome.report["chosen_exit"]]
        setup.console.line(f"neuroflux: exit after unit {chosen['unit']} ({chosen['params']:,} of "
                           f"{outcome.report['full_model_params']:,} parameters), test_acc {final['top1']:.4f}")
        summary["neuroflux"] = outcome.report
        summary["epochs"] = outcome.report["epochs_trained"]  # what was trained: every block's epochs
        return summary

    @classmethod
    def check(cls, cfg, method, model, input_shape, num_classes: int, memory: bool = True) -> None:
        if method.prunes:
            raise ConfigError("method", "trainer=neuroflux trains a dense network with local losses; use method=dense "
                                        "(its default)")
        if not splits_into_units(model):
            raise ConfigError("model", f"NeuroFlux cannot split {label(cfg.model)} into units: it needs a units() "
                                       "method returning (modules in forward order, head); the built-in LeNet, VGG, "
                                       "AlexNet and CIFAR-stem ResNet models have one (docs/extending.md)")

    @classmethod
    def check_parallel(cls, cfg, world) -> None:
        raise ConfigError("trainer", "neuroflux trains block by block in one process; start it without torchrun")
