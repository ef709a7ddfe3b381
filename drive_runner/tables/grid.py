"""The jobs of a table: the union of its grids (one cartesian product each, in Hydra's sweep syntax) with
the command line's overrides applied to every job. Used by the table sweeper and by drive-run's checks
before launch, so both see the same jobs."""

from __future__ import annotations

from typing import Any


# Groups whose choice is what a table measures: overriding one makes it another experiment than the paper's.
MEASURED = ("dataset", "model", "recipe")


def table_jobs(table, arguments: list[str]) -> list[list[str]]:
    """Each job's overrides; a command-line key replaces the grid's value for that key (and may sweep). An override
    of what the table measures (MEASURED) is recorded in every job's table.changed: the report then leaves the
    paper's numbers out and says why."""
    from drive_runner.sweep_jobs import expand_sweep

    given = {argument.split("=", 1)[0].lstrip("+~") for argument in arguments}
    changed = changes(arguments)
    if changed:
        arguments = [*arguments, f"table.changed=[{','.join(repr(c) for c in changed)}]"]
    jobs = []
    for grid in grids(table):
        items = [f"{key}={_sweep_text(value)}" for key, value in grid.items() if key not in given]
        jobs += expand_sweep([*items, *arguments])
    return jobs[: table.limit] if table.limit is not None else jobs


def changes(arguments: list[str]) -> list[str]:
    """The command line's overrides of what a table measures."""
    return [a for a in arguments if a.split("=", 1)[0].lstrip("+~") in MEASURED]


def grids(table) -> list[dict]:
    """The grids of the table's chosen recipe (`table.recipe`), as plain dicts."""
    from omegaconf import OmegaConf

    chosen = OmegaConf.select(table, f"grids.{table.recipe}") if table.grids is not None else None
    if chosen is None:
        from drive_runner.errors import ConfigError

        allowed = ", ".join(sorted(table.grids)) if table.grids is not None else "none"
        raise ConfigError("table.recipe", f"table {table.name} has no '{table.recipe}' recipe; allowed: {allowed}")
    return [dict(grid) for grid in OmegaConf.to_container(chosen, resolve=True, enum_to_str=True)]


def _sweep_text(value: Any) -> str:
    """A grid value as Hydra override text: a list sweeps over its items."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
