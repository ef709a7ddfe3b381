"""Names that find their work: a job's directory derives from what the job computes.

The identity of a job is its resolved config without the keys that change how a run is watched or
where its inputs live but not what it computes (the logger, thread and worker counts, the data
folder, the resume policy, and the table it was launched from: a table's grids list its other jobs, so
editing one row must not make every finished row look new), together with the code of any user package
its `_target_`s name (tracking/provenance.py). Its hash, behind a readable prefix, names the job's
directory, so the same command (or the same sweep) launched again finds the same directories: finished
jobs are reported done, interrupted ones continue, only missing ones start, and a job whose code changed
starts anew.
"""

from __future__ import annotations

import hashlib
import json
import re

from omegaconf import DictConfig, OmegaConf

from drive_runner.instantiation import label
from drive_runner.launch_rank import on_main_rank
from drive_runner.tracking.provenance import code_sources, digest

COSMETIC_KEYS = ("logger", "hardware.num_workers", "hardware.threads", "dataset.root", "dataset.download", "resume")
HASH_LENGTH = 10


def identity(container: dict) -> dict:
    """The config as plain data without the cosmetic keys (and without Hydra's and the table's nodes)."""
    kept = json.loads(json.dumps(container, default=str))
    kept.pop("hydra", None)
    kept.pop("table", None)  # the grid's values for this job are already in the job's own keys
    for key in COSMETIC_KEYS:
        *parents, last = key.split(".")
        node = kept
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return kept


def config_hash(container: dict) -> str:
    """The hash of a job's identity: its config's, and the code its targets name where there is user code."""
    kept = identity(container)
    code = digest(code_sources(container))
    if code is not None:
        kept["code"] = code
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def differing_keys(first: dict, second: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two identities."""
    keys = []
    for key in sorted(set(first) | set(second)):
        a, b = first.get(key), second.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(differing_keys(a, b, f"{name}."))
        elif a != b:
            keys.append(name)
    return keys


def job_name(container: dict) -> str:
    """`<method>-<model>-<dataset>-s<sparsity>-seed<seed>-<hash>`: readable, and unique per identity; a job
    without a sparsity target (dense, PruneTrain, NeuroFlux) has no `-s<sparsity>`."""
    density_key = f"c{container['compression']:g}" if container.get("compression") is not None \
        else f"s{container['sparsity']:g}"
    parts = [label(container["method"]), label(container["model"]), label(container["dataset"]),
             *([density_key] if has_sparsity_target(container) else []), f"seed{container['seed']}",
             config_hash(container)]
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", "-".join(str(p) for p in parts))


def has_sparsity_target(container: dict) -> bool:
    """Whether a job prunes to a sparsity target: the classes its config names (the method's, and the runner a
    trainer names) say so by their `sparsity_target`; a node without `_target_` is taken to have one."""
    from hydra.utils import get_object

    for group in ("method", "trainer"):
        node = container.get(group)
        target = node.get("_target_") if isinstance(node, dict) else None
        if target:
            try:
                if not getattr(get_object(target), "sparsity_target", True):
                    return False
            except Exception:  # noqa: BLE001 - a target that cannot be imported is refused by validation
                pass
    return True


def job_name_resolver(*, _root_: DictConfig) -> str:
    """`${job_name:}` in a config: the job's name from the config it sits in (Hydra's node left out)."""
    return job_name(_without_hydra(_root_))


def _without_hydra(root: DictConfig) -> dict:
    keys = [key for key in root.keys() if key != "hydra"]
    return {key: OmegaConf.to_container(root[key], resolve=True, enum_to_str=True) if OmegaConf.is_config(root[key]) else root[key]
            for key in keys}


def command_name(arguments: list[str]) -> str:
    """A sweep's directory name from its command line (the sorted overrides, cosmetic keys left out):
    the keys it sets, then a hash of the whole. `table.limit` is left out too, so a table launched with its
    first N jobs and later in full shares one folder, and the full launch finds those N done."""
    left_out = (*COSMETIC_KEYS, "hydra", "table.limit")
    kept = sorted(a for a in arguments if not a.split("=", 1)[0].lstrip("+~").startswith(left_out))
    digest = hashlib.sha256("\n".join(kept).encode()).hexdigest()[:HASH_LENGTH]
    keys = "_".join(dict.fromkeys(a.split("=", 1)[0].lstrip("+~").replace("/", ".") for a in kept))
    keys = re.sub(r"[^A-Za-z0-9_.-]", "_", keys)[:60]
    return f"{keys}-{digest}" if keys else digest


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("job_name"):
        OmegaConf.register_new_resolver("job_name", job_name_resolver)
    if not OmegaConf.has_resolver("on_main_rank"):  # rank 0 of a data-parallel job alone writes its directory
        OmegaConf.register_new_resolver("on_main_rank", on_main_rank)
