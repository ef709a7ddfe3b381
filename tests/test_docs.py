"""The repository documents itself: every link in the README and docs/ resolves inside the repository."""

import re

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_resolves_inside_the_repository():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.exists() or REPO not in resolved.parents:
                broken.append(f"{page.name}: {target}")
    assert not broken


def test_no_page_points_outside_the_repository():
    for page in [*PAGES, REPO / "pyproject.toml"]:
        text = page.read_text()
        assert "../shared" not in text and "METHODS.md" not in text and "DESIGN.md" not in text, page


def test_every_method_has_a_page_naming_its_config():
    text = " ".join(page.read_text() for page in PAGES[1:])
    for method in ("drive", "snip", "grasp", "synflow", "magnitude", "random", "imp", "gmp", "prunetrain"):
        assert f"method={method}" in text, method
    assert "trainer=neuroflux" in text


def test_the_readme_keeps_the_promises_a_new_user_reads_first():
    """Issue 21, item 10: how to reach the installed commands, prunetrain in the method table, one path scheme for
    table outputs, IMP's epochs per level, and what load_checkpoint returns."""
    readme = (REPO / "README.md").read_text()
    assert "source .venv/bin/activate" in readme and ".venv/bin" in readme
    method_row = next(line for line in readme.splitlines() if line.startswith("| `method=` |"))
    assert "prunetrain" in method_row
    schemes = set(re.findall(r"outputs/tables/[^`\s]*", readme))
    assert schemes and all("<time>" not in scheme for scheme in schemes)
    assert "IMP trains `trainer.epochs` once per level" in readme
    assert "model, engine = drive_runner.checkpoint.load_checkpoint(path)" in readme


def test_help_says_imp_trains_its_epochs_per_level():
    from drive_runner.cli.usage import run_usage

    assert "IMP trains it per level" in run_usage()
