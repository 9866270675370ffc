"""`python -m cliplit_core enhance`: files, folders, bad inputs, 16-bit, light maps."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cliplit_core.cli.app import main
from cliplit_core.files.images import to_uint8, write_png

from tests.support.data import REPO, synthetic_photo
from tests.support.imagefiles import write_png16


@pytest.mark.slow
def test_enhance_folder_matches_reference_and_skips_bad_files(tmp_path, shared_data, official_weights_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("110_51093502029_o", "c5b8b4070688114c602b27933c6699b6"):
        (src / f"{name}.png").write_bytes((shared_data / "backlit_small" / f"{name}.png").read_bytes())
    (src / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    out = tmp_path / "out"
    rc = main(["enhance", str(src), "-o", str(out), "--weights", str(official_weights_path), "--save-light",
               "--device", "cpu"])
    assert rc == 1  # one input failed
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "skipped" in err and "enhanced 2 of 3" in err
    for name in ("110_51093502029_o", "c5b8b4070688114c602b27933c6699b6"):
        ours = np.asarray(Image.open(out / f"{name}.png")).astype(int)
        ref = np.asarray(Image.open(shared_data / "reference_small" / f"{name}.png")).astype(int)
        assert np.abs(ours - ref).max() <= 1
        light = np.asarray(Image.open(out / f"{name}_light.png"))
        ref_light = np.load(shared_data / "reference_small" / f"{name}_light.npy")
        assert np.abs(light.astype(int) - to_uint8(np.clip(ref_light, 0, 1)).astype(int)).max() <= 1
    assert not (out / "broken.png").exists()


@pytest.mark.slow
def test_never_overwrites_inputs_and_handles_16bit_gray_rgba(tmp_path, official_weights_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    photo = synthetic_photo(40, 50, 4)
    write_png16(d / "deep.png", (photo[..., :3] * 65535).astype(np.uint16))
    write_png(d / "rgba.png", photo)
    write_png(d / "gray.png", photo[..., :1])
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    rc = main(["enhance", str(d), "-o", str(d), "--weights", str(official_weights_path), "--tile", "16",
               "--strength", "0.5"])
    assert rc == 0
    assert "step 24/24" in capsys.readouterr().err  # progress inside each tiled image: 12 tiles, 2 passes
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.name in before} == before
    assert Image.open(d / "rgba_enhanced.png").mode == "RGBA"
    assert Image.open(d / "gray_enhanced.png").mode == "L"
    assert np.array_equal(np.asarray(Image.open(d / "rgba_enhanced.png"))[..., 3], to_uint8(photo[..., 3]))
    assert np.asarray(Image.open(d / "deep_enhanced.png")).mean() > to_uint8(photo[..., :3]).mean()


def test_same_stem_from_two_folders_gets_distinct_outputs(tmp_path, official_weights_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write_png(tmp_path / sub / "x.png", synthetic_photo(8, 8, seed=ord(sub)))
    assert main(["enhance", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "o"),
                 "--weights", str(official_weights_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith(".")) == ["x.png", "x_2.png"]


@pytest.mark.slow
def test_module_entry_point_and_bad_weights_exit_cleanly(tmp_path):
    write_png(tmp_path / "a.png", synthetic_photo(8, 8))
    (tmp_path / "w.pth").write_text("nope")
    r = subprocess.run([sys.executable, "-m", "cliplit_core", "enhance", str(tmp_path / "a.png"), "-o",
                        str(tmp_path / "o"), "--weights", str(tmp_path / "w.pth")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "w.pth: not a checkpoint" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "cliplit_core", "enhance", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--save-light" in r.stdout and "--strength" in r.stdout


def _exif_photo(path, photo, orientation=6, icc=b"test-icc-profile", **save):
    im = Image.fromarray(to_uint8(photo))
    ex = im.getexif()
    ex[0x0112] = orientation  # rotate 90 degrees clockwise when displayed
    ex[0x010F] = "TestCam"    # Make
    im.save(path, exif=ex.tobytes(), icc_profile=icc, **save)


def test_results_keep_colour_profile_and_exif_upright(tmp_path, official_weights_path):
    photo = synthetic_photo(30, 40)
    _exif_photo(tmp_path / "cam.jpg", photo, quality=98)
    for fmt, ext in (("png", ".png"), ("jpg", ".jpg"), ("webp", ".webp"), ("tiff", ".tif")):
        out = tmp_path / fmt
        assert main(["enhance", str(tmp_path / "cam.jpg"), "-o", str(out), "--weights", str(official_weights_path),
                     "--format", fmt, "--device", "cpu"]) == 0
        res = Image.open(out / f"cam{ext}")
        assert res.size == (30, 40)  # the pixels were turned upright ...
        ex = res.getexif()
        assert ex.get(0x0112) == 1 and ex.get(0x010F) == "TestCam"  # ... so the orientation tag says 1
        assert res.info.get("icc_profile") == b"test-icc-profile"
    stripped = tmp_path / "stripped"
    assert main(["enhance", str(tmp_path / "cam.jpg"), "-o", str(stripped), "--weights", str(official_weights_path),
                 "--strip-metadata"]) == 0
    res = Image.open(stripped / "cam.png")
    assert "icc_profile" not in res.info and res.getexif().get(0x010F) is None


def test_16bit_input_gives_16bit_png(tmp_path, official_weights_path):
    from cliplit_core.files.images import read_image_info

    photo = synthetic_photo(24, 32)
    write_png16(tmp_path / "deep.png", (photo * 65535).astype(np.uint16))
    write_png(tmp_path / "flat.png", photo)
    assert main(["enhance", str(tmp_path / "deep.png"), str(tmp_path / "flat.png"), "-o", str(tmp_path / "o"),
                 "--weights", str(official_weights_path)]) == 0
    deep, info = read_image_info(tmp_path / "o" / "deep.png")
    flat, info8 = read_image_info(tmp_path / "o" / "flat.png")
    assert info.bits == 16 and info8.bits == 8
    assert (tmp_path / "o" / "deep.png").read_bytes()[24] == 16  # IHDR bit depth
    levels = np.round(deep * 65535)
    assert np.mean(levels % 257 != 0) > 0.5  # real 16-bit values, not 8-bit ones scaled up
    assert np.abs(deep - flat).max() < 2.5 / 255  # same result, up to the 8-bit input / output rounding
    assert main(["enhance", str(tmp_path / "deep.png"), "-o", str(tmp_path / "o8"), "--bits", "8",
                 "--weights", str(official_weights_path)]) == 0
    assert read_image_info(tmp_path / "o8" / "deep.png")[1].bits == 8


def test_jpeg_output_drops_alpha_with_a_warning_and_bad_options_fail(tmp_path, official_weights_path, capsys):
    write_png(tmp_path / "rgba.png", synthetic_photo(16, 16, 4))
    assert main(["enhance", str(tmp_path / "rgba.png"), "-o", str(tmp_path / "o"), "--format", "jpg",
                 "--quality", "80", "--weights", str(official_weights_path)]) == 0
    assert Image.open(tmp_path / "o" / "rgba.jpg").mode == "RGB"
    assert "jpg has no alpha channel" in capsys.readouterr().err
    assert main(["enhance", str(tmp_path / "rgba.png"), "-o", str(tmp_path / "o"), "--format", "jpg",
                 "--bits", "16", "--weights", str(official_weights_path)]) == 2
    assert "--bits 16 needs --format png" in capsys.readouterr().err
    assert main(["enhance", str(tmp_path / "rgba.png"), "-o", str(tmp_path / "o"), "--quality", "0",
                 "--weights", str(official_weights_path)]) == 2


OPENMP_POLICY_SEEN = """
import os, sys
from cliplit_core.cli import app as cli
rc = cli.main(sys.argv[1:])
print(rc, 'torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))
"""


@pytest.mark.slow
def test_a_pipelined_run_lets_idle_openmp_threads_sleep_before_torch_is_loaded(tmp_path):
    """--jobs above 1 and more than one photo: OMP_WAIT_POLICY=PASSIVE is set before torch (and its
    OpenMP) is loaded, unless the user set a policy; one photo or --jobs 1 leave the environment alone."""
    import os

    two, one = tmp_path / "two", tmp_path / "one"
    for folder, n in ((two, 2), (one, 1)):
        folder.mkdir()
        for k in range(n):
            Image.new("RGB", (8, 8), (k, 40, 90)).save(folder / f"p{k}.png")

    def seen(folder, jobs: str, **env) -> list[str]:
        base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        r = subprocess.run([sys.executable, "-c", OPENMP_POLICY_SEEN, "enhance", str(folder), "-o",
                            str(tmp_path / "out"), "--jobs", jobs, "--weights", str(tmp_path / "missing.pth")],
                           cwd=REPO, capture_output=True, text=True, env={**base, **env}, timeout=120)
        assert "missing.pth" in r.stderr  # the run itself stopped at the weights, after loading torch
        return r.stdout.split()

    assert seen(two, "2") == ["2", "True", "PASSIVE"]
    assert seen(two, "1") == ["2", "True", "None"]
    assert seen(one, "2") == ["2", "True", "None"]
    assert seen(two, "2", OMP_WAIT_POLICY="ACTIVE") == ["2", "True", "ACTIVE"]
