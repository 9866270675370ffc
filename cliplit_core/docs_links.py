"""Links to the project's documentation online.

A ComfyUI tooltip or a log line is read far from the repository: a user cannot open
``docs/performance.md`` from there. Text shown by a host says what it has to say in its own
words and, where it points at the documentation, uses :func:`docs_url` (the repository's
web address, as in pyproject.toml's ``[project.urls] Repository``).
"""
from __future__ import annotations

import re

REPOSITORY_URL = "https://github.com/cliplit/ComfyUI-CLIP-LIT"  # pyproject.toml, [project.urls] Repository
BRANCH = "main"


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def docs_url(page: str, heading: str = "") -> str:
    """The web address of ``docs/<page>`` (and of one of its headings, given as written there)."""
    url = f"{REPOSITORY_URL}/blob/{BRANCH}/docs/{page}"
    return f"{url}#{heading_anchor(heading)}" if heading else url
