"""The shape of the package: imports flow one way, composition uses Hydra's public API only, the pipeline
names no method, and every default is written once (in the schemas, not again in a YAML file)."""

from __future__ import annotations

import ast
import dataclasses
from collections import defaultdict

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import REPO

PACKAGE = REPO / "drive_runner"


def room(parts: tuple[str, ...]) -> str | None:
    """A module's room: its sub-package (drive_runner.train), or itself when it is a top-level module."""
    if len(parts) < 2 or parts[0] != "drive_runner":
        return None
    head = parts[1]
    if (PACKAGE / head).is_dir() or (PACKAGE / f"{head}.py").is_file():
        return f"drive_runner.{head}"
    return None


def import_graph() -> dict[str, set[str]]:
    """Room -> the rooms its modules import, at module level or inside functions alike."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        source = room(parts)
        if source is None:
            continue
        package = parts[:-1] if path.name != "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = list(package[: len(package) - node.level + 1]) if node.level else []
                targets = [".".join([*base, node.module] if node.module else base)]
            for target in targets:
                destination = room(tuple(target.split(".")))
                if destination and destination != source:
                    graph[source].add(destination)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one room (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_between_the_rooms_of_the_package():
    graph = import_graph()
    assert graph["drive_runner.cli"] >= {"drive_runner.pipeline", "drive_runner.report"}  # the walk sees imports
    assert circles(graph) == []


def test_the_knot_finder_finds_a_knot():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_hydra_api_in_the_package():
    offenders = [str(path.relative_to(REPO)) for path in PACKAGE.rglob("*.py") if "hydra._internal" in path.read_text()]
    assert offenders == []


def code_words(path) -> set[str]:
    """Every name, attribute and word of a string literal in a module's code (its docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node)}
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.alias):
            words.update(node.name.split("."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.update(word.strip(".,:;'\"()[]{}") for word in node.value.split())
    return words


def test_the_pipeline_names_no_method_or_trainer():
    from drive_runner.methods import METHODS

    names = set(METHODS) | {"neuroflux", "backprop"}
    assert len(names) == 12
    assert not code_words(PACKAGE / "pipeline.py") & names


def test_the_word_finder_sees_code_and_strings():
    words = code_words(PACKAGE / "runners" / "blockwise.py")
    assert {"NeuroFluxTrainer", "neuroflux", "exit_model"} <= words


def schema_of(group: str, path) -> type | None:
    """The dataclass a YAML file of conf/<group> starts from (its `/schema/<group>@_here_: <name>` entry)."""
    from drive_runner.config import SCHEMAS
    from drive_runner.memory.options import NeuroFluxConfig
    from drive_runner.methods.registry import registry
    from drive_runner.train.options import TrainerConfig

    entry = next(item for item in yaml.safe_load(path.read_text())["defaults"]
                 if isinstance(item, dict) and f"/schema/{group}@_here_" in item)
    name = entry[f"/schema/{group}@_here_"]
    if group == "method":
        return registry().methods[name].options
    if group == "trainer":
        return {"backprop": TrainerConfig, "neuroflux": NeuroFluxConfig}[name]
    return SCHEMAS[group][name]


@pytest.mark.parametrize("group", ["model", "dataset", "method", "schedule", "trainer", "hardware", "logger"])
def test_no_yaml_file_restates_a_default(group):
    """Every default is written once, in the schema: a YAML file carries only what differs from it."""
    for path in sorted((REPO / "conf" / group).glob("*.yaml")):
        schema = schema_of(group, path)
        defaults = {f.name: f for f in dataclasses.fields(schema)}
        values = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "defaults"}
        for key, value in values.items():
            field = defaults[key]
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            if default is dataclasses.MISSING or default == "???":
                continue
            assert OmegaConf.create({"v": default}).v != value, f"{path.relative_to(REPO)} restates {key}: {value!r}"


def test_the_restating_check_catches_a_restated_default(tmp_path):
    from drive_runner.config import HardwareConfig

    field = {f.name: f for f in dataclasses.fields(HardwareConfig)}["device"]
    assert OmegaConf.create({"v": field.default}).v == "auto"  # what a YAML `device: auto` would be compared with
