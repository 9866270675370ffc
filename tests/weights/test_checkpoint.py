"""Checkpoint formats and every bad-checkpoint case gives a clear error."""
import os
import pickle
import zipfile

import pytest
import torch

from cliplit_core.weights.checkpoint import convert, load_network, read_weights, save_weights
from cliplit_core.cli.app import main
from cliplit_core.errors import CheckpointError
from cliplit_core.light.network import CLIPLITNet


def _sd():
    torch.manual_seed(0)
    return CLIPLITNet().state_dict()


def test_authors_pth_with_and_without_module_prefix(tmp_path):
    sd = _sd()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pth")
    torch.save(sd, tmp_path / "plain.pth")
    torch.save({"state_dict": sd}, tmp_path / "wrapped.pth")
    for name in ("dp.pth", "plain.pth", "wrapped.pth"):
        net = load_network(tmp_path / name)
        assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items()), name


def test_safetensors_round_trip_keeps_metadata_and_padding(tmp_path):
    sd = _sd()
    pair = torch.randn(2, 9, 16)
    save_weights(tmp_path / "m.safetensors", enhancer=sd, prompt_pair=pair, padding="zero",
                 metadata={"clip_model": "tiny", "prompt_length": 7})
    w = read_weights(tmp_path / "m.safetensors")
    assert w.padding == "zero" and w.metadata["clip_model"] == "tiny" and w.metadata["prompt_length"] == "7"
    assert w.metadata["format"] == "cliplit" and w.metadata["format_version"] == "1"
    assert torch.equal(w.prompt_pair, pair)
    net = load_network(tmp_path / "m.safetensors")
    assert net.padding == "zero" and net.cond1.padding_mode == "zeros"
    assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temp file


def test_convert_official_and_outputs_are_identical(tmp_path, official_weights_path, small_photo):
    from cliplit_core.engine.inference import enhance

    assert main(["convert", str(official_weights_path), str(tmp_path / "o.safetensors")]) == 0
    a = load_network(official_weights_path)
    b = load_network(tmp_path / "o.safetensors")
    x = small_photo[:, :, :40, :40]
    assert torch.equal(enhance(a, x).image, enhance(b, x).image)
    with pytest.raises(CheckpointError, match="overwrite"):
        convert(tmp_path / "o.safetensors", tmp_path / "o.safetensors")


def _expect(path, pattern):
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_network(path)
    assert str(path) in str(e.value)
    return str(e.value)


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.pth", "not found")


def test_empty_file(tmp_path):
    (tmp_path / "e.pth").write_bytes(b"")
    _expect(tmp_path / "e.pth", "empty")


def test_truncated_pth(tmp_path):
    torch.save(_sd(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "t.pth").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "t.pth", "truncated or corrupted")


def test_truncated_safetensors(tmp_path):
    save_weights(tmp_path / "full.safetensors", enhancer=_sd())
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "t.safetensors", "truncated")
    (tmp_path / "h.safetensors").write_bytes(data[:40])
    _expect(tmp_path / "h.safetensors", "truncated")


@pytest.mark.parametrize("content, kind", [
    (b"hello, I am a text file\n", "a text file"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "a PNG image"),
    (b"\xff\xd8\xff\xe0JFIF", "a JPEG image"),
    (b"<!DOCTYPE html><html>", "an HTML or XML page (a download that returned a web page?)"),
    (b'{"embed_dim": 512}', "a JSON file"),
    (b"k\xb4\x00\x01" + bytes(range(40)), "a file of unknown type"),
])
def test_not_a_checkpoint_says_what_the_file_is_and_what_to_use(tmp_path, content, kind):
    (tmp_path / "x.pth").write_bytes(content)
    msg = _expect(tmp_path / "x.pth", "not a checkpoint")
    assert msg == (f"{tmp_path / 'x.pth'}: not a checkpoint: this is {kind}, not a PyTorch .pth or .safetensors "
                   f"weights file; choose a weights file instead (e.g. the authors' enhancement_model.pth)")


def test_zip_that_is_not_a_torch_file(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.pth", "w") as z:
        z.writestr("readme.txt", "hi")
    _expect(tmp_path / "z.pth", "not a readable PyTorch checkpoint")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cliplit_pwned",))


def test_pickle_carrying_code_is_refused(tmp_path):
    torch.save({"cond1.weight": torch.zeros(1), "payload": Evil()}, tmp_path / "evil.pth")
    with open(tmp_path / "evil_plain.pth", "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    if os.path.exists("/tmp/cliplit_pwned"):
        os.remove("/tmp/cliplit_pwned")
    _expect(tmp_path / "evil.pth", "refused")
    _expect(tmp_path / "evil_plain.pth", "refused")
    assert not os.path.exists("/tmp/cliplit_pwned")


def test_wrong_and_missing_keys_and_shapes_are_listed(tmp_path):
    sd = _sd()
    sd.pop("cond1.bias")
    sd["extra.weight"] = torch.zeros(3)
    sd["condx.weight"] = torch.zeros(64, 32, 5, 5)
    torch.save(sd, tmp_path / "bad.pth")
    msg = _expect(tmp_path / "bad.pth", "not a CLIP-LIT enhancement checkpoint")
    assert "missing keys: cond1.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "condx.weight: (64, 32, 5, 5) (expected (64, 32, 3, 3))" in msg


def test_other_network_state_dict_is_rejected(tmp_path):
    torch.save(torch.nn.Linear(3, 4).state_dict(), tmp_path / "linear.pth")
    msg = _expect(tmp_path / "linear.pth", "missing keys")
    assert "(30 in all)" in msg


def test_non_finite_weights_are_rejected(tmp_path):
    sd = _sd()
    sd["cond1.bias"][0] = float("nan")
    torch.save(sd, tmp_path / "nan.pth")
    _expect(tmp_path / "nan.pth", "NaN")


def test_prompt_only_file_has_no_enhancer(tmp_path):
    save_weights(tmp_path / "p.safetensors", prompt_pair=torch.zeros(2, 5, 8))
    _expect(tmp_path / "p.safetensors", "no enhancement network")


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    (tmp_path / "e.pth").write_bytes(b"")
    assert main(["convert", str(tmp_path / "e.pth"), str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "Traceback" not in err
    assert not (tmp_path / "o.safetensors").exists()
