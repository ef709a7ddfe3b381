"""Where the code of a run comes from, when its config names a user's model, dataset or method by `_target_`.

A config holds the user's arguments, not their code: editing `my_project/models.py` changes the experiment
without changing one config value. So every package a `_target_` names (outside drive-runner) is part of a
job's identity: a user's package by a SHA-256 of each of its source files, an installed library by its
version. The run records them in `sources.json`; a job whose code changed gets a new run directory, and a
directory holding a finished run of other code is not reported done (the changed files are named).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import sysconfig
from importlib import metadata
from pathlib import Path

SOURCES = "sources.json"
OWN_PACKAGE = "drive_runner"


def targets(container) -> list[str]:
    """Every `_target_` of a config (as plain data), Hydra's own node left out."""
    found = []
    if isinstance(container, dict):
        for key, value in container.items():
            if key == "hydra":
                continue
            if key == "_target_" and isinstance(value, str):
                found.append(value)
            else:
                found += targets(value)
    elif isinstance(container, list):
        for value in container:
            found += targets(value)
    return found


def code_sources(container: dict) -> dict[str, dict]:
    """{package: {file or "version": digest}} for every package a config's targets name, drive-runner's own
    aside (its version is the project's). A target that cannot be found is left for validation to refuse."""
    sources = {}
    for target in targets(container):
        package = target.split(".")[0]
        if package != OWN_PACKAGE and package not in sources:
            described = _package_sources(package)
            if described is not None:
                sources[package] = described
    return sources


@functools.lru_cache(maxsize=64)
def _package_sources(package: str) -> dict | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return None
    origin = Path(spec.origin)
    if _installed(origin):
        return {"version": _version(package)}
    if spec.submodule_search_locations:  # a package: every Python file below it
        root = Path(next(iter(spec.submodule_search_locations)))
        files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
        base = root.parent
    else:
        files, base = [origin], origin.parent
    return {str(path.relative_to(base)): hashlib.sha256(path.read_bytes()).hexdigest()[:16] for path in files}


def _installed(path: Path) -> bool:
    """Whether a module lives among installed libraries (not a user's checkout or an editable install)."""
    libraries = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib", "stdlib")}
    return any(root in path.resolve().parents for root in libraries)


def _version(package: str) -> str:
    distributions = metadata.packages_distributions().get(package, [package])
    try:
        return metadata.version(distributions[0])
    except metadata.PackageNotFoundError:
        return "unknown"


def digest(sources: dict) -> str | None:
    """One short hash of all the sources, for a job's identity (None when the config names no user code)."""
    if not sources:
        return None
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:16]


def changed(recorded: dict, current: dict) -> list[str]:
    """What differs between two records of sources: changed, added or removed files, or library versions."""
    differences = []
    for package in sorted(set(recorded) | set(current)):
        before, after = recorded.get(package, {}), current.get(package, {})
        if "version" in before or "version" in after:
            if before.get("version") != after.get("version"):
                differences.append(f"{package} {before.get('version', 'absent')} -> {after.get('version', 'absent')}")
            continue
        differences += [path for path in sorted(set(before) | set(after)) if before.get(path) != after.get(path)]
    return differences


def read_sources(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / SOURCES).read_text())
    except (OSError, ValueError):
        return {}


def write_sources(directory, container: dict) -> None:
    """Record the code a run is made of beside its config (nothing when it names no user code)."""
    sources = code_sources(container)
    if sources and directory.writable:
        directory.write_json(SOURCES, sources)
