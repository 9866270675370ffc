"""Fixtures of the node tests."""
from __future__ import annotations

import pytest

from nodes import comfy_env


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty models/cliplit/ folder (CLIPLIT_MODELS_DIR outside ComfyUI) and an empty core cache."""
    d = tmp_path / "models" / "cliplit"
    d.mkdir(parents=True)
    monkeypatch.setenv(comfy_env.MODELS_DIR_ENV, str(d))
    monkeypatch.setenv("CLIPLIT_CACHE", str(tmp_path / "cache"))
    return d
