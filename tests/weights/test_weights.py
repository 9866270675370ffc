"""The named weights sources (`official`, `authors-init`): checksum, caching and offline errors
(network mocked)."""
import hashlib

import pytest

from cliplit_core.weights import sources as weights
from cliplit_core.errors import WeightsDownloadError


def _fake_downloader(payload: bytes, calls: list):
    def download(url, dest, progress):
        calls.append(url)
        dest.write_bytes(payload)
        if progress:
            progress(len(payload), len(payload))

    return download


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    payload = b"pretend these are the weights"
    import dataclasses

    monkeypatch.setitem(weights.SOURCES, "official", dataclasses.replace(
        weights.SOURCES["official"], sha256=hashlib.sha256(payload).hexdigest()))
    calls = []
    p = weights.official_weights(tmp_path, downloader=_fake_downloader(payload, calls))
    assert p == tmp_path / "enhancement_model.pth" and p.read_bytes() == payload
    assert calls == [weights.OFFICIAL_URL]
    assert weights.official_weights(tmp_path, downloader=_fake_downloader(payload, calls)) == p
    assert len(calls) == 1  # cached: no second download


def test_checksum_mismatch_keeps_nothing(tmp_path):
    with pytest.raises(WeightsDownloadError, match="sha256"):
        weights.official_weights(tmp_path, downloader=_fake_downloader(b"tampered", []))
    assert list(tmp_path.iterdir()) == []


def test_offline_says_where_to_put_the_file(tmp_path):
    def offline(url, dest, progress):
        raise OSError("Name or service not known")

    with pytest.raises(WeightsDownloadError) as e:
        weights.official_weights(tmp_path, downloader=offline)
    msg = str(e.value)
    assert weights.OFFICIAL_URL in msg and str(tmp_path / "enhancement_model.pth") in msg
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_wrong_hash_is_not_used(tmp_path):
    (tmp_path / "enhancement_model.pth").write_bytes(b"something else")
    with pytest.raises(WeightsDownloadError, match="exists but its sha256"):
        weights.official_weights(tmp_path, downloader=_fake_downloader(b"x", []))


def test_the_real_official_file_passes_the_checksum(official_weights_path, tmp_path):
    assert weights.sha256_of(official_weights_path) == weights.OFFICIAL_SHA256
    (tmp_path / "enhancement_model.pth").write_bytes(official_weights_path.read_bytes())

    def no_network(*a):
        raise AssertionError("must not download when a verified file is present")

    assert weights.official_weights(tmp_path, downloader=no_network) == tmp_path / "enhancement_model.pth"


def test_cache_dir_honours_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPLIT_CACHE", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c"


def test_authors_init_resolves_from_the_cache_and_loads(tmp_path, monkeypatch):
    from tests.support.data import SHARED_DATA

    src = SHARED_DATA / "official_weights" / "init_enhancement_model.pth"
    if not src.is_file():
        pytest.skip(f"{src} not found (clone the project with ../shared beside it)")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "init_enhancement_model.pth").write_bytes(src.read_bytes())
    monkeypatch.setenv("CLIPLIT_CACHE", str(cache))

    def no_network(url, dest, progress):
        raise AssertionError("must not download a cached file")

    monkeypatch.setattr(weights, "_download", no_network)
    p = weights.resolve_weights("authors-init")
    assert p == cache / "init_enhancement_model.pth"
    from cliplit_core.weights.checkpoint import read_weights

    assert read_weights(p).enhancer is not None
    # offline and not cached: the message names the file and where to put it
    (cache / "init_enhancement_model.pth").unlink()
    with pytest.raises(WeightsDownloadError) as e:
        weights.named_weights("authors-init", downloader=lambda u, d, p: (_ for _ in ()).throw(OSError("offline")))
    msg = str(e.value)
    assert "init_pretrained_models/init_enhancement_model.pth" in msg and str(cache) in msg
