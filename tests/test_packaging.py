"""The hand-written package list in pyproject.toml covers every package directory (the Hydra plugin too)."""

import tomllib

from tests.conftest import REPO


def test_every_package_is_listed_for_installation():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(REPO).parts)
        for top in ("drive_runner", "hydra_plugins")
        for path in (REPO / top).rglob("__init__.py")
    }
    assert found | {"drive_runner.conf"} == listed
    assert (REPO / "conf" / "__init__.py").exists()
