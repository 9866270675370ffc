"""The prompt pair: initialisations, text features, authors' file format, our safetensors format."""
from __future__ import annotations

import pytest
import torch
from tests.support.clip_fixtures import clip_config_dir, require_shared, tiny_vit, one_thread  # noqa: F401

from cliplit_core.weights.checkpoint import read_weights, save_weights
from cliplit_core.errors import CheckpointError, CLIPLITError
from cliplit_core.light.network import CLIPLITNet
from cliplit_core.clip.prompts import PromptPair, prompt_text

pytestmark = pytest.mark.usefixtures("one_thread")


def test_prompt_text():
    assert prompt_text(3) == "X X X"
    assert prompt_text() == " ".join(["X"] * 16)


def test_from_text_is_the_token_embeddings_of_x_x_x(tiny_vit):
    from open_clip.tokenizer import SimpleTokenizer

    n = 5
    pair = PromptPair.from_text(tiny_vit, n)
    x_id = SimpleTokenizer().encoder["x</w>"]  # "X" is lower-cased by the CLIP tokenizer
    ids = [49406] + [x_id] * n + [49407] + [0] * (20 - n - 2)  # start, N x "x", end, padding
    table = tiny_vit.model.token_embedding.weight
    expected = table[torch.tensor(ids)]
    assert pair.embeddings.shape == (2, 20, 32)
    torch.testing.assert_close(pair.embeddings[0], expected)
    torch.testing.assert_close(pair.embeddings[1], expected)
    assert pair.eot_index == n + 1
    assert pair.embeddings.requires_grad


def test_prompt_length_must_fit_the_context(tiny_vit):
    PromptPair.from_text(tiny_vit, 18)  # start + 18 + end = 20 tokens
    with pytest.raises(CLIPLITError, match="does not fit"):
        PromptPair.from_text(tiny_vit, 19)
    with pytest.raises(CLIPLITError, match="does not fit"):
        PromptPair(torch.zeros(2, 20, 32), prompt_length=19)
    with pytest.raises(CLIPLITError, match=r"\[2, context, width\]"):
        PromptPair(torch.zeros(3, 20, 32))


def test_random_init_is_xavier_normal(tiny_vit):
    pair = PromptPair.random(tiny_vit, 16, generator=torch.Generator().manual_seed(0))
    # xavier normal of [2, 20, 32]: fan_in 20 * 32 = 640, fan_out 2 * 32 = 64 -> std sqrt(2 / 704) = 0.0533
    assert pair.embeddings.shape == (2, 20, 32)
    assert pair.embeddings.std().item() == pytest.approx(0.0533, rel=0.1)
    again = PromptPair.random(tiny_vit, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pair.embeddings, again.embeddings)


def test_text_features_at_the_end_of_text_position(tiny_vit):
    """Equal to open_clip's encode_text of "X X X X" (whose end token is at N + 1)."""
    pair = PromptPair.from_text(tiny_vit, 4)
    tf = pair.text_features(tiny_vit)
    assert tf.shape == (2, tiny_vit.embed_dim)
    torch.testing.assert_close(tf.norm(dim=-1), torch.ones(2))
    with torch.no_grad():
        ref = tiny_vit.model.encode_text(tiny_vit.tokenize(["X X X X"]), normalize=True)
    torch.testing.assert_close(tf[0:1].detach(), ref, rtol=1e-5, atol=1e-6)
    tf.sum().backward()
    assert pair.embeddings.grad is not None and pair.embeddings.grad.abs().sum() > 0


def test_frozen_text_features_are_cached_until_the_pair_changes(tiny_vit):
    pair = PromptPair.random(tiny_vit, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(False)
    a = pair.text_features(tiny_vit)
    assert pair.text_features(tiny_vit) is a
    assert not a.requires_grad
    with torch.no_grad():
        pair.embeddings.add_(0.5)  # what an optimiser step does: an in-place update
    b = pair.text_features(tiny_vit)
    assert b is not a and not torch.allclose(a, b)
    pair.requires_grad_(True)
    c = pair.text_features(tiny_vit)
    assert c.requires_grad and c is not b  # training: always a fresh graph
    with torch.no_grad():
        assert pair.text_features(tiny_vit) is b  # no autograd: the cache again


def _authors_state_dict(pair_tensor: torch.Tensor) -> dict:
    """What ``torch.save(nn.DataParallel(Prompts).state_dict())`` holds in the authors' train.py."""
    c, w = pair_tensor.shape[1:]
    return {
        "module.embedding_prompt": pair_tensor,
        "module.text_encoder.positional_embedding": torch.randn(c, w),
        "module.text_encoder.transformer.resblocks.0.attn.in_proj_weight": torch.randn(3 * w, w),
        "module.text_encoder.ln_final.weight": torch.ones(w),
        "module.text_encoder.text_projection": torch.randn(w, 16),
    }


def test_authors_file_loads_and_round_trips_through_our_format(tmp_path, tiny_vit):
    emb = torch.randn(2, 20, 32)
    torch.save(_authors_state_dict(emb), tmp_path / "init_prompt_pair.pth")
    pair = PromptPair.load(tmp_path / "init_prompt_pair.pth", clip_model=tiny_vit.name, clip_pretrained="none")
    assert torch.equal(pair.embeddings.detach(), emb)
    assert pair.prompt_length == 16 and pair.eot_index == 17  # the authors' N
    tf = pair.text_features(tiny_vit).detach()

    enhancer = CLIPLITNet().state_dict()
    pair.save(tmp_path / "ours.safetensors", enhancer=enhancer, padding="zero")
    w = read_weights(tmp_path / "ours.safetensors")
    assert w.enhancer is not None and set(w.enhancer) == set(enhancer)
    assert torch.equal(w.prompt_pair, emb)
    assert w.metadata["clip_model"] == tiny_vit.name
    assert w.metadata["clip_pretrained"] == "none"
    assert w.metadata["prompt_length"] == "16"
    assert w.padding == "zero"

    back = PromptPair.load(tmp_path / "ours.safetensors")
    assert (back.clip_model, back.clip_pretrained, back.prompt_length) == (tiny_vit.name, "none", 16)
    torch.testing.assert_close(back.text_features(tiny_vit).detach(), tf, rtol=0, atol=0)


def test_plain_authors_key_without_module_prefix(tmp_path):
    torch.save({"embedding_prompt": torch.ones(2, 20, 32)}, tmp_path / "p.pth")
    assert PromptPair.load(tmp_path / "p.pth", prompt_length=4).prompt_length == 4


def test_official_sized_pair_does_not_fit_a_tiny_model(tmp_path, tiny_vit):
    torch.save(_authors_state_dict(torch.randn(2, 77, 512)), tmp_path / "prompt_pair.pth")
    pair = PromptPair.load(tmp_path / "prompt_pair.pth")
    assert pair.clip_model == "ViT-B-32" and pair.clip_pretrained == "openai"  # the authors' backbone
    with pytest.raises(CLIPLITError, match=r"\[2, 77, 512\] does not fit CLIP model .* made for 'ViT-B-32'"):
        pair.text_features(tiny_vit)


def test_load_errors(tmp_path):
    save_weights(tmp_path / "enh.safetensors", enhancer=CLIPLITNet().state_dict())
    with pytest.raises(CheckpointError, match="holds no prompt pair"):
        PromptPair.load(tmp_path / "enh.safetensors")
    torch.save({"module." + k: v for k, v in CLIPLITNet().state_dict().items()}, tmp_path / "enh.pth")
    with pytest.raises(CheckpointError, match="enhancement network checkpoint, not a prompt pair"):
        PromptPair.load(tmp_path / "enh.pth")
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no prompt pair"):
        PromptPair.load(tmp_path / "other.pth")
    torch.save({"module.embedding_prompt": torch.zeros(2, 20)}, tmp_path / "flat.pth")
    with pytest.raises(CheckpointError, match="expected \\[2, context, width\\]"):
        PromptPair.load(tmp_path / "flat.pth")
    torch.save({"module.embedding_prompt": torch.full((2, 20, 32), float("nan"))}, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN"):
        PromptPair.load(tmp_path / "nan.pth")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        PromptPair.load(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="not found"):
        PromptPair.load(tmp_path / "missing.safetensors")


def test_official_enhancement_file_is_not_a_prompt_pair():
    path = require_shared("official_weights/enhancement_model.pth")
    with pytest.raises(CheckpointError, match="enhancement network checkpoint, not a prompt pair"):
        PromptPair.load(path)
