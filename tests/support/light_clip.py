"""The lighting CLIP for tests (issue 20): built once, cached, keyed by what it depends on.

:func:`light_clip` builds ``tools.lightclip`` at its ``ci`` size (seed 0; 20 to 35 s of one
CPU core) into pytest's cache folder (``.pytest_cache/d/light_clip/<fingerprint>``), where
later sessions find it: the fingerprint hashes the recipe's code, captions, model config,
seed, size and the PyTorch / open_clip versions, so any change rebuilds it. Without pytest's
cache (``-p no:cacheprovider``) it is built into the session's temporary folder.

Import the fixtures a test module needs (``from tests.support.light_clip import light_clip,
light_backbone``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

SEED = 0
SIZE = "ci"


def cache_folder(config, tmp_path_factory) -> Path:
    """Where the builds are kept: pytest's cache when it is on, else this session's temporary folder."""
    cache = getattr(config, "cache", None)
    return cache.mkdir("light_clip") if cache is not None else tmp_path_factory.mktemp("light_clip")


@pytest.fixture(scope="session")
def light_clip(request, tmp_path_factory):
    """The built model's files (``tools.lightclip.build.LightClip``: ``.config``, ``.weights``)."""
    from tools.lightclip.build import SIZES, LightClip, build, fingerprint

    spec = SIZES[SIZE]
    folder = cache_folder(request.config, tmp_path_factory) / fingerprint(SEED, spec)[:20]
    model = LightClip.in_folder(folder)
    if not model.built_with(SEED, spec):
        build(folder, SEED, spec)
    return model


@pytest.fixture(scope="session")
def light_backbone(light_clip):
    """The lighting CLIP loaded like any local CLIP (``load_backbone(config, weights)``)."""
    from cliplit_core.clip.backbone import load_backbone

    return load_backbone(str(light_clip.config), str(light_clip.weights))
