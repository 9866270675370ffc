"""The four losses of SPEC section 3 against hand-computed values, plus gradients and batching.

Expected numbers are written out; they were derived by hand (plain arithmetic on
the tiny tensors in each test), not by running the code under test.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.support.clip_fixtures import clip_config_dir, tiny_rn, tiny_vit, one_thread  # noqa: F401

from cliplit_core.clip import losses
from cliplit_core.clip.backbone import CLIPBackboneError
from cliplit_core.clip.prompts import PromptPair
from cliplit_core.clip.scores import backlit_probability, backlit_probability_from_features

pytestmark = pytest.mark.usefixtures("one_thread")


def test_authors_scales():
    assert losses.CLIP_LOSS_SCALE == 320.0
    assert losses.IDENTITY_LOSS_SCALE == 25.0
    assert losses.ENHANCEMENT_IDENTITY_WEIGHT == 0.9
    assert losses.PROMPT_LOSS_SCALE == 200.0
    assert losses.ENHANCEMENT_ALPHAS == (1.0, 1.0, 1.0, 1.0, 0.5)
    assert losses.RECONSTRUCTION_ALPHAS == (1.0,) * 5
    assert (losses.MARGIN_M0, losses.MARGIN_M1, losses.MARGIN_M2) == (0.9, 0.2, 0.2)


# --------------------------------------------------------------------------- prompt initialisation
def test_prompt_init_loss_hand_computed():
    # image features f1 = (0.6, 0.8), f2 = (0.8, 0.6); text t0 = (1, 0), t1 = (0.6, 0.8)
    # cosines: f1 -> (0.6, 1.0), f2 -> (0.8, 0.96)
    img = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    labels = torch.tensor([1, 0])
    # logit scale 100: logits (60, 100) label 1 -> log(1 + e^-40) ~ 0; (80, 96) label 0 -> log(1 + e^16)
    # = 16.00000011253517; mean 8.000000056267584
    assert losses.prompt_init_loss(img, txt, labels).item() == pytest.approx(8.000000056267584, rel=1e-6)
    # logit scale 10: log(1 + e^-4) = 0.01814992791780978, log(1 + e^1.6) = 1.783900740888339
    got = losses.prompt_init_loss(img, txt, labels, logit_scale=10.0)
    assert got.item() == pytest.approx(0.9010253344030743, rel=1e-6)
    assert losses.prompt_init_loss(img, txt, labels, logit_scale=10.0, scale=3.0).item() == pytest.approx(
        3 * 0.9010253344030743, rel=1e-6)


def test_backlit_probability_hand_computed():
    # t0 = (0.6, 0.8), t1 = (0.8, 0.6); f = (0.6, 0.8): c = (1, 0.96) -> S = 1 / (1 + e^-4)
    # f = (0, 1): c = (0.8, 0.6) -> S = 1 / (1 + e^-20)
    txt = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    img = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    s = backlit_probability_from_features(img, txt)
    assert s.tolist() == pytest.approx([0.9820137900379085, 0.9999999979388463], rel=1e-6)


# --------------------------------------------------------------------------- L_clip
class _StubBackbone:
    """image_features(images) = normalise(channel means of R, G): lets L_clip be computed by hand."""

    device = torch.device("cpu")

    def image_features(self, images, antialias=False):
        return F.normalize(images.mean(dim=(2, 3))[:, :2], dim=-1)


def test_clip_loss_hand_computed():
    txt = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    # image 0 has R, G = 0.6, 0.8 -> f = (0.6, 0.8); image 1 has R, G = 0, 0.5 -> f = (0, 1)
    imgs = torch.zeros(2, 3, 4, 5)
    imgs[0, 0], imgs[0, 1], imgs[1, 1] = 0.6, 0.8, 0.5
    # S = 0.9820137900379085 and 0.9999999979388463 -> mean 0.9910068939883774
    loss = losses.CLIPLoss(_StubBackbone(), txt)
    assert loss(imgs).item() == pytest.approx(0.9910068939883774, rel=1e-6)
    scaled = losses.CLIPLoss(_StubBackbone(), txt, scale=losses.CLIP_LOSS_SCALE)
    assert scaled(imgs).item() == pytest.approx(317.12220607628075, rel=1e-6)
    assert losses.clip_loss_from_probability(torch.tensor([0.25, 0.75, 0.5]), scale=2.0).item() == pytest.approx(1.0)


# --------------------------------------------------------------------------- L_identity
def test_identity_loss_hand_computed():
    # layer A, [B=2, C=1, H=1, W=2]: image 0 (1,2) vs (1,0) -> MSE (0 + 4) / 2 = 2; image 1 (0,0) vs (1,1) -> 1
    a_t = torch.tensor([[[[1.0, 2.0]]], [[[0.0, 0.0]]]])
    a_b = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 1.0]]]])
    # layer B, [2, 2, 1, 1]: image 0 (3,1) vs (0,1) -> 4.5; image 1 (0,0) vs (2,0) -> 2
    b_t = torch.tensor([[[[3.0]], [[1.0]]], [[[0.0]], [[0.0]]]])
    b_b = torch.tensor([[[[0.0]], [[1.0]]], [[[2.0]], [[0.0]]]])
    # alphas (1, 0.5): image 0: 2 + 2.25, image 1: 1 + 1 -> sum over batch 6.25
    got = losses.identity_loss_from_features([a_t, b_t], [a_b, b_b], (1.0, 0.5))
    assert got.item() == pytest.approx(6.25)
    assert losses.identity_loss_from_features([a_t, b_t], [a_b, b_b], (1.0, 0.5), scale=25).item() == pytest.approx(
        156.25)
    # alphas (1, 1): 2 + 4.5 + 1 + 2 = 9.5
    assert losses.identity_loss_from_features([a_t, b_t], [a_b, b_b], (1.0, 1.0)).item() == pytest.approx(9.5)
    with pytest.raises(ValueError, match="one alpha per feature map"):
        losses.identity_loss_from_features([a_t], [a_b], (1.0, 1.0))


def test_resnet_feature_maps_are_the_five_stages(tiny_rn):
    x = torch.rand(2, 3, 64, 64)
    pix = tiny_rn.preprocess(x)
    with torch.no_grad():
        maps = losses.resnet_feature_maps(tiny_rn, pix)
        ref = tiny_rn.visual.forward_intermediates(pix, intermediates_only=True)["image_intermediates"]
    # width 8: stem 8 ch at 64/4; layer1..4: 32, 64, 128, 256 ch at 16, 16, 8, 4, 2 px
    assert [tuple(m.shape) for m in maps] == [(2, 8, 16, 16), (2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4),
                                              (2, 256, 2, 2)]
    assert len(ref) == 5
    for m, r in zip(maps, ref):
        torch.testing.assert_close(m, r)


def test_identity_loss_needs_a_resnet(tiny_vit):
    with pytest.raises(CLIPBackboneError, match="ResNet"):
        losses.IdentityLoss(tiny_vit)


def test_identity_loss_matches_per_image_loop(tiny_rn):
    """Batched == the authors' per-image loop (sum over images of sum_l alpha_l * MSE)."""
    torch.manual_seed(0)
    enhanced, original = torch.rand(3, 3, 40, 56), torch.rand(3, 3, 40, 56)
    alphas = losses.ENHANCEMENT_ALPHAS
    with torch.no_grad():
        batched = losses.IdentityLoss(tiny_rn, alphas)(enhanced, original)
        loop = 0.0
        for i in range(3):
            ft = losses.resnet_feature_maps(tiny_rn, tiny_rn.preprocess(enhanced[i:i + 1]))
            fb = losses.resnet_feature_maps(tiny_rn, tiny_rn.preprocess(original[i:i + 1]))
            loop += sum(a * F.mse_loss(t.squeeze(0), b.squeeze(0)) for a, t, b in zip(alphas, ft, fb))
    assert batched.item() == pytest.approx(float(loop), rel=1e-5)
    assert losses.IdentityLoss(tiny_rn, alphas)(original, original).item() == 0.0
    assert losses.RECONSTRUCTION_ALPHAS == (1.0,) * 5 and losses.IDENTITY_LOSS_SCALE == 25.0


# --------------------------------------------------------------------------- margin losses
S_B = torch.tensor([0.9, 0.3])
S_W = torch.tensor([0.2, 0.1])
S_T = torch.tensor([0.5, 0.25])
S_PREV = torch.tensor([0.7, 0.2])
SCORES = {"backlit": S_B, "welllit": S_W, "result": S_T, "previous": S_PREV}


def first_refinement_loss(m0=losses.MARGIN_M0):
    """``max(0, S(I_w) - S(I_b) + m0)`` (no enhancement results yet)."""
    return losses.ranking_loss(SCORES, [("backlit", "welllit", m0)])


def prompt_loss_1(m0=losses.MARGIN_M0, m1=losses.MARGIN_M1):
    """``L_prompt1``: backlit > result > well-lit in ``S``, with margins m0, m0, m1."""
    return losses.ranking_loss(SCORES, [("backlit", "welllit", m0), ("backlit", "result", m0),
                                        ("result", "welllit", m1)])


def prompt_loss_2(m0=losses.MARGIN_M0, m1=losses.MARGIN_M1, m2=losses.MARGIN_M2):
    """``L_prompt2``: backlit > previous result > current result > well-lit, margins m0, m0, m1, m2."""
    return losses.ranking_loss(SCORES, [("backlit", "welllit", m0), ("backlit", "previous", m0),
                                        ("result", "welllit", m1), ("previous", "result", m2)])


def test_first_refinement_hand_computed():
    # max(0, S_w - S_b + 0.9) = (0.2, 0.7) -> 0.45
    assert first_refinement_loss().item() == pytest.approx(0.45)
    # the authors' first round used m0 = 1.0: (0.3, 0.8) -> 0.55; scale 200 -> 110
    got = first_refinement_loss(m0=losses.AUTHORS_FIRST_REFINEMENT_M0) * losses.PROMPT_LOSS_SCALE
    assert got.item() == pytest.approx(110.0)


def test_prompt_loss_1_hand_computed():
    # 0.45 + mean(max(0, S_t - S_b + 0.9)) = mean(0.5, 0.85) = 0.675
    #      + mean(max(0, S_w - S_t + 0.2)) = mean(0, 0.05) = 0.025   -> 1.15
    assert prompt_loss_1().item() == pytest.approx(1.15)


def test_prompt_loss_2_hand_computed():
    # 0.45 + mean(max(0, S_prev - S_b + 0.9)) = mean(0.7, 0.8) = 0.75
    #      + mean(max(0, S_w - S_t + 0.2)) = 0.025
    #      + mean(max(0, S_t - S_prev + 0.2)) = mean(0, 0.25) = 0.125   -> 1.35
    assert prompt_loss_2().item() == pytest.approx(1.35)
    # late-round margins m1 = m2 = 0.1: third term 0, fourth mean(0, 0.15) = 0.075 -> 1.275
    got = prompt_loss_2(m1=losses.AUTHORS_LATE_M1, m2=losses.AUTHORS_LATE_M1)
    assert got.item() == pytest.approx(1.275)


def test_margin_terms_equal_torch_margin_ranking_loss():
    ones = torch.ones(2)
    ref = torch.nn.MarginRankingLoss(0.9)(S_B, S_W, ones)  # authors: margin_loss_L(inp, ref, 1)
    assert first_refinement_loss().item() == pytest.approx(ref.item())


# --------------------------------------------------------------------------- gradients, batching
def test_gradients_reach_the_image_not_the_backbones(tiny_vit, tiny_rn):
    pair = PromptPair.random(tiny_vit, 8, generator=torch.Generator().manual_seed(3))
    original = torch.rand(2, 3, 48, 40)
    enhanced = (original * 1.5).clamp(0, 1).requires_grad_(True)
    # the enhancement objective as the trainer forms it: 320 L_clip + 0.9 x 25 L_identity
    lc = losses.CLIPLoss(tiny_vit, pair, scale=losses.CLIP_LOSS_SCALE)(enhanced)
    li = losses.IdentityLoss(tiny_rn, losses.ENHANCEMENT_ALPHAS, scale=losses.IDENTITY_LOSS_SCALE)(enhanced, original)
    total = lc + losses.ENHANCEMENT_IDENTITY_WEIGHT * li
    assert losses.ENHANCEMENT_IDENTITY_WEIGHT == 0.9
    total.backward()
    assert enhanced.grad is not None and torch.isfinite(enhanced.grad).all()
    assert enhanced.grad.abs().sum() > 0
    for bb in (tiny_vit, tiny_rn):
        assert all(p.grad is None and not p.requires_grad for p in bb.model.parameters())
    assert pair.embeddings.grad is None  # prompts are frozen during enhancement training
    # each part alone reaches the image too
    for part in (losses.CLIPLoss(tiny_vit, pair)(enhanced), losses.IdentityLoss(tiny_rn)(enhanced, original)):
        g, = torch.autograd.grad(part, enhanced)
        assert g.abs().sum() > 0


def test_clip_loss_matches_per_image_loop(tiny_vit):
    """Batched S == the authors' loop (one image at a time through resize, normalise, encode)."""
    pair = PromptPair.random(tiny_vit, 8, generator=torch.Generator().manual_seed(4))
    imgs = torch.rand(4, 3, 50, 70)
    with torch.no_grad():
        batched = losses.CLIPLoss(tiny_vit, pair)(imgs)
        tf = pair.text_features(tiny_vit)
        loop = sum(backlit_probability(imgs[i:i + 1], tf, tiny_vit)[0] for i in range(4)) / 4
    assert batched.item() == pytest.approx(loop.item(), abs=1e-6)


def test_prompt_loss_gradients_reach_the_prompt_only(tiny_vit):
    pair = PromptPair.from_text(tiny_vit, 8)
    feats = F.normalize(torch.randn(6, tiny_vit.embed_dim), dim=-1)
    tf = pair.text_features(tiny_vit)
    s = backlit_probability_from_features(feats, tf)
    ranked = {"backlit": s[:2], "welllit": s[2:4], "result": s[4:], "previous": s[:2].flip(0)}
    terms = [("backlit", "welllit", 0.9), ("backlit", "previous", 0.9), ("result", "welllit", 0.2),
             ("previous", "result", 0.2)]
    loss = losses.PROMPT_LOSS_SCALE * losses.ranking_loss(ranked, terms)
    loss = loss + losses.prompt_init_loss(feats, tf, torch.tensor([0, 1, 0, 1, 0, 1]))
    loss.backward()
    assert pair.embeddings.grad is not None and pair.embeddings.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_vit.model.parameters())
    assert math.isfinite(loss.item())
