"""README.md and docs/: short README in a fixed order, working relative links, no reference to
a document users do not have, and the test command that CI runs."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from cliplit_core.docs_links import heading_anchor

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

README_MAX_CHARS = 15_000
# The README's sections, in this order (a heading matches when it starts with the words).
README_SECTIONS = ("Install", "The nodes", "Command line", "Training", "Weights and license", "Limits", "Tests")
TEST_COMMAND = "python -m pytest -q"
NO_SPEC_DIRS = ("docs", "cliplit_core", "nodes", "trainer")

# [text](target) and ![alt](target); the target up to whitespace or ")"; optional "title".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _markdown_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))   # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)                      # nor does inline code
    return LINK.findall(text)


def _is_relative(target: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith("//")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file: lower case, punctuation dropped, spaces -> '-'."""
    headings = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", path.read_text(encoding="utf-8")), re.M)
    return {heading_anchor(h) for h in headings}


def test_readme_is_at_most_15000_characters():
    n = len(README.read_text(encoding="utf-8"))
    assert n <= README_MAX_CHARS, f"README.md has {n} characters, at most {README_MAX_CHARS}"


def test_readme_sections_appear_in_the_required_order():
    headings = [h.strip() for h in re.findall(r"^## (.+)$", FENCE.sub("", README.read_text(encoding="utf-8")),
                                              re.M)]
    positions = []
    for name in README_SECTIONS:
        found = [i for i, h in enumerate(headings) if h.lower().startswith(name.lower())]
        assert found, f"README.md has no '## {name}' section (sections: {headings})"
        positions.append(found[0])
    assert positions == sorted(positions), f"README sections out of order: {headings}"


def test_readme_gives_the_test_command_that_ci_runs():
    readme = README.read_text(encoding="utf-8")
    assert f"`{TEST_COMMAND}`" in readme or f"\n{TEST_COMMAND}\n" in readme
    ci = ROOT / ".ci" / "run"
    if ci.is_file():
        assert TEST_COMMAND in ci.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(doc: Path):
    broken = []
    for target in _markdown_links(doc):
        if not _is_relative(target):
            continue
        file_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
        linked = (doc.parent / file_part) if file_part else doc
        if not linked.exists():
            broken.append(target)
        elif "#" in target and linked.suffix == ".md" and target.split("#", 1)[1] not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links to missing files or headings: {broken}"


def test_link_checker_finds_links_and_ignores_code(tmp_path: Path):
    md = tmp_path / "x.md"
    md.write_text("see [a](docs/a.md#part) and ![pic](img/p.jpg \"t\") and [web](https://x.org)\n"
                  "`[not](a link)`\n```\n[nor](this)\n```\n", encoding="utf-8")
    assert _markdown_links(md) == ["docs/a.md#part", "img/p.jpg", "https://x.org"]
    assert [t for t in _markdown_links(md) if _is_relative(t)] == ["docs/a.md#part", "img/p.jpg"]
    md.write_text("# Fast preview (`--fast`, `enhance_preview`)\n## 2. The CLIP side\n", encoding="utf-8")
    assert _anchors(md) == {"fast-preview---fast-enhance_preview", "2-the-clip-side"}


def test_no_mention_of_spec_in_user_facing_files():
    files = [README] + [p for d in NO_SPEC_DIRS for p in sorted((ROOT / d).rglob("*"))
                        if p.is_file() and p.suffix in (".md", ".py", ".json", ".txt", ".yaml", ".toml")]
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in files
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if re.search(r"\bSPEC\b", line)]
    assert not hits, f"'SPEC' (a document users do not have) is mentioned at {hits}"
