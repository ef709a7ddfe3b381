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
