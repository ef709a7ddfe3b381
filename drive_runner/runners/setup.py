"""Everything a runner starts from, built in one place: the seed, the data, the model and the acceleration,
with the run's directory, records, stop requests and training state beside them."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from drive_runner import distributed
from drive_runner.data import DataBundle, build_dataset
from drive_runner.interrupts import StopRequests
from drive_runner.models import build_model
from drive_runner.run_state import RandomState, RunState
from drive_runner.runners.records import Phases
from drive_runner.tracking.console import Console
from drive_runner.tracking.rundir import RunDirectory
from drive_runner.tracking.tracker import Tracker
from drive_runner.train.acceleration import Acceleration, resolve_device, wants_data_on_device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Setup:
    cfg: DictConfig
    directory: RunDirectory
    tracker: Tracker
    console: Console
    phases: Phases
    stop: StopRequests
    saved: dict | None  # the training state an earlier attempt saved, to continue from
    seed: int
    device: torch.device
    data: DataBundle
    model: nn.Module
    acceleration: Acceleration
    state: RunState

    def restore_state(self) -> None:
        """After a runner has registered its own parts of the training state: the parts every run has (last,
        so the random generators are restored after everything else), then the saved state if there is one."""
        for name, part in (("timings", self.phases), ("tracker", self.tracker), ("random", RandomState())):
            self.state.register(name, part)
        if self.saved:
            self.state.restore(self.saved)

    def fresh_initialisations(self):
        """The k-th independent re-initialisation of the model (a CPU state dict), leaving the run's own
        random streams untouched."""
        model_cfg, data, seed = self.cfg.model, self.data, self.seed

        def draw(index: int) -> dict:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 1_000_003 + 900_001 + index)
                return build_model(model_cfg, data.input_shape, data.num_classes).state_dict()

        return draw


def prepare(cfg: DictConfig, directory: RunDirectory, tracker: Tracker, console: Console, phases: Phases,
            stop: StopRequests, saved: dict | None) -> Setup:
    seed = int(cfg.seed)
    seed_everything(seed)
    device = resolve_device(cfg.hardware, distributed.current().local_rank)
    if cfg.hardware.threads:
        torch.set_num_threads(int(cfg.hardware.threads))
    data_on_device = wants_data_on_device(cfg.hardware, device)
    data = build_dataset(cfg.dataset, seed=seed, num_workers=int(cfg.hardware.num_workers), on_device=data_on_device)
    torch.manual_seed(seed)  # the initialisation depends on the seed alone, not on what the data loader drew
    model = build_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes).to(device)
    acceleration = Acceleration.from_config(cfg.hardware, device, model)
    acceleration.configure_backends(cfg.hardware)
    acceleration.prepare_model(model)
    if acceleration.data_on_device:
        data = data.to(device)
    return Setup(cfg, directory, tracker, console, phases, stop, saved, seed, device, data, model, acceleration,
                 RunState(directory))
