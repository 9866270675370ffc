"""What ComfyUI shows of the pack (tooltips, descriptions) and the warnings it logs name no file of
the repository: a user reads them in ComfyUI, where docs/performance.md cannot be opened. Links to the
documentation are its web address (pyproject's Repository + /blob/main/docs/...), to pages and
headings that exist."""
from __future__ import annotations

import re
import subprocess
from urllib.parse import unquote

import pytest
from tests.support.nodes_support import REPO, shown_texts

from cliplit_core import docs_links
from cliplit_core.engine import run_plan

URL = re.compile(r"https?://[^\s)'\"]+")
# a path-like word: at least one "/" between name characters, or a file name with an extension
PATHLIKE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]*|[\w-]+\.(?:md|py|json|toml|txt|sh|jpg|png))(?![\w/])")


def _repo_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout: every file on disk
        return [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file() and ".git" not in p.parts]
    return out.stdout.splitlines()


REPO_FILES = _repo_files()
TOP_LEVEL = {f.split("/", 1)[0] for f in REPO_FILES}
FILE_NAMES = {f.rsplit("/", 1)[-1] for f in REPO_FILES}


def repo_paths(text: str) -> list[str]:
    """The words of ``text`` (web addresses left out) that name a file or folder of the repository."""
    found = []
    for word in PATHLIKE.findall(URL.sub(" ", text)):
        word = word.rstrip(".")
        first = word.split("/", 1)[0]
        if (REPO / word).exists() or ("/" in word and first in TOP_LEVEL) or word in FILE_NAMES:
            found.append(word)
    return found


def texts_shown() -> dict[str, str]:
    texts = shown_texts()
    texts["Backlit Enhance small-tile warning (log)"] = run_plan.small_tile_warning(64, 1024, 1024)
    return texts


def test_the_checker_finds_repository_paths_and_nothing_else():
    assert repo_paths("figures: docs/performance.md.") == ["docs/performance.md"]
    assert repo_paths("see performance.md, tools/comfyui_smoke.py and cliplit_core/") == [
        "performance.md", "tools/comfyui_smoke.py", "cliplit_core/"]
    assert repo_paths("docs/some_future_page.md") == ["docs/some_future_page.md"]  # a folder of the repo
    assert repo_paths("put it into models/cliplit/ (ComfyUI/models/cliplit), e.g. enhancement_model.pth; "
                      f"I / L; 1/4 per side; {docs_links.docs_url('performance.md')}") == []


@pytest.mark.parametrize("where", sorted(texts_shown()))
def test_no_shown_text_names_a_path_of_the_repository(where):
    text = texts_shown()[where]
    assert not repo_paths(text), f"{where} names {repo_paths(text)} (say it, or link {docs_links.REPOSITORY_URL})"


def test_the_repository_address_is_pyprojects():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    urls = pyproject.split("[project.urls]", 1)[1]
    assert re.search(r'^Repository\s*=\s*"([^"]+)"', urls, re.M).group(1) == docs_links.REPOSITORY_URL


def test_every_documentation_link_shown_points_to_an_existing_page_and_heading():
    prefix = f"{docs_links.REPOSITORY_URL}/blob/{docs_links.BRANCH}/docs/"
    links = [(where, url) for where, text in texts_shown().items() for url in URL.findall(text)]
    assert links, "no documentation link shown at all"
    for where, url in links:
        assert url.startswith(prefix), (where, url)
        page, _, anchor = url[len(prefix):].partition("#")
        doc = REPO / "docs" / unquote(page)
        assert doc.is_file(), (where, url)
        if anchor:
            headings = re.findall(r"^#{1,6} (.+)$", doc.read_text(encoding="utf-8"), re.M)
            assert anchor in {docs_links.heading_anchor(h) for h in headings}, (where, url)
