"""The sweeper of `drive-run table=NAME`: a published table is a union of grids (LeNet-300-100 at 95/98% and
LeNet-5 at 98/99%, say), which Hydra's basic sweeper, a single cartesian product, cannot express.

The grids come from the table file (`table.grids.<table.recipe>`); command-line overrides apply to every
job and may sweep too. Everything else (the launcher, multirun.yaml, job numbering) is the basic sweeper's.
"""


from dataclasses import dataclass
from typing import List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class TableSweeperConf:
    _target_: str = "hydra_plugins.drive_runner_table_sweeper.table_sweeper.TableSweeper"
    max_batch_size: Optional[int] = None


ConfigStore.instance().store(group="hydra/sweeper", name="table", node=TableSweeperConf, provider="drive-runner")


class TableSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=None)

    def split_arguments(self, overrides, max_batch_size: Optional[int]) -> List[List[List[str]]]:
        """Every job of the table's grids with the command line's overrides; batches as the basic sweeper's."""
        from drive_runner.tables.grid import table_jobs

        jobs = table_jobs(self.config.table, [override.input_line for override in overrides])
        return list(self.split_overrides_to_chunks(jobs, max_batch_size))
