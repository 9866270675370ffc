"""The CLIP-LIT losses (docs/design.md, "Losses and their scales"), all batched.

Each function computes the paper's formula (scale 1) and takes ``scale=`` for the
authors' effective scale; the scales are the constants below (the trainer combines
the terms with them).

===========================  ===========================================  ==========================
loss                          formula                                      authors' effective scale
===========================  ===========================================  ==========================
prompt initialisation         cross-entropy of ``100 * [c_0, c_1]``        1
                              (label 0 backlit, 1 well-lit)
``L_clip``                    mean over batch of ``S(I_t)``                ``CLIP_LOSS_SCALE`` = 320
``L_identity``                sum over batch of                            ``IDENTITY_LOSS_SCALE`` = 25
                              ``sum_l alpha_l MSE(phi_l(I_b), phi_l(I_t))``
enhancement stage             ``320 L_clip + 0.9 * 25 L_identity``         alphas 1, 1, 1, 1, 0.5
reconstruction stage          ``25 L_identity``                            alphas 1, 1, 1, 1, 1
prompt refinement (margins)   hinge terms below, each averaged over batch  ``PROMPT_LOSS_SCALE`` = 200
===========================  ===========================================  ==========================

The margin-ranking losses take per-image backlit probabilities ``S`` (``[B]``;
row ``i`` of each argument belongs to the same training sample, as in the
authors' ``nn.MarginRankingLoss`` with label 1) and return the batch mean of
``max(0, S_should_be_lower - S_should_be_higher + margin)`` summed over terms
(:func:`ranking_loss`, given the terms of one of these rankings):

* first refinement: ``max(0, S(I_w) - S(I_b) + m0)``
* ``L_prompt1``: ``... + max(0, S(I_t) - S(I_b) + m0) + max(0, S(I_w) - S(I_t) + m1)``
* ``L_prompt2``: ``max(0, S(I_w)-S(I_b)+m0) + max(0, S(I_{t-1})-S(I_b)+m0)
  + max(0, S(I_w)-S(I_t)+m1) + max(0, S(I_t)-S(I_{t-1})+m2)``

Paper margins m0 = 0.9, m1 = m2 = 0.2 (defaults); the authors' code used
m0 = 1.0 in the very first refinement and m1 = m2 = 0.1 in late rounds
(``AUTHORS_FIRST_REFINEMENT_M0``, ``AUTHORS_LATE_M1``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .backbone import CLIPBackbone, CLIPBackboneError
from .scores import LOGIT_SCALE, backlit_probability_from_features, clip_logits

# authors' effective scales and weights
PROMPT_INIT_LOSS_SCALE = 1.0
CLIP_LOSS_SCALE = 16.0 * 20.0  # 320
IDENTITY_LOSS_SCALE = 25.0
ENHANCEMENT_IDENTITY_WEIGHT = 0.9
PROMPT_LOSS_SCALE = 200.0
ENHANCEMENT_ALPHAS = (1.0, 1.0, 1.0, 1.0, 0.5)
RECONSTRUCTION_ALPHAS = (1.0, 1.0, 1.0, 1.0, 1.0)
# margins
MARGIN_M0 = 0.9
MARGIN_M1 = 0.2
MARGIN_M2 = 0.2
AUTHORS_FIRST_REFINEMENT_M0 = 1.0
AUTHORS_LATE_M1 = 0.1  # used for m1 and m2 once two rounds of results exist


def _text_features(prompt, backbone: CLIPBackbone) -> torch.Tensor:
    if hasattr(prompt, "text_features"):
        return prompt.text_features(backbone)
    return prompt.to(backbone.device, torch.float32)


# --------------------------------------------------------------------------- 1. prompt initialisation
def prompt_init_loss(image_features: torch.Tensor, text_features: torch.Tensor, labels: torch.Tensor, *,
                     logit_scale: float = LOGIT_SCALE, scale: float = PROMPT_INIT_LOSS_SCALE) -> torch.Tensor:
    """Cross-entropy of ``logit_scale * [c_0, c_1]`` against ``labels`` (0 backlit, 1 well-lit).

    ``image_features``: ``[B, D]`` L2-normalised (computed once, without grad);
    ``text_features``: ``[2, D]`` from ``PromptPair.text_features`` (with grad).
    Mean over the batch, like ``F.cross_entropy``.
    """
    logits = clip_logits(image_features, text_features, logit_scale)
    return scale * F.cross_entropy(logits, labels.to(logits.device).long())


# --------------------------------------------------------------------------- 2. L_clip
def clip_loss_from_probability(backlit_prob: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """``L_clip`` from per-image ``S(I_t)``: ``scale * mean``."""
    return scale * backlit_prob.mean()


class CLIPLoss:
    """``L_clip(I_t) = mean_batch S(I_t)`` against a frozen prompt pair (times ``scale``).

    ``prompt``: a ``PromptPair`` or ``[2, D]`` text features; its text features are
    taken without grad (the prompts are frozen while the enhancer trains) and are
    cached by the pair. Gradients flow to the images only.
    """

    def __init__(self, backbone: CLIPBackbone, prompt, *, scale: float = 1.0, antialias: bool = False):
        self.backbone = backbone
        self.prompt = prompt
        self.scale = float(scale)
        self.antialias = antialias
        if hasattr(prompt, "check_fits"):
            prompt.check_fits(backbone)

    def backlit_probability(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            tf = _text_features(self.prompt, self.backbone)
        feats = self.backbone.image_features(images, antialias=self.antialias)
        return backlit_probability_from_features(feats, tf)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return clip_loss_from_probability(self.backlit_probability(images), scale=self.scale)


# --------------------------------------------------------------------------- 3. L_identity
def _require_resnet(backbone: CLIPBackbone) -> None:
    if not backbone.is_resnet:
        raise CLIPBackboneError(
            f"the identity loss needs a ResNet CLIP image tower (e.g. RN101, RN50); "
            f"{backbone.name} has a {type(backbone.visual).__name__}"
        )


def resnet_feature_maps(backbone: CLIPBackbone, pixels: torch.Tensor) -> list[torch.Tensor]:
    """The five feature maps of an open_clip ``ModifiedResNet`` image tower (any size).

    ``pixels`` are *preprocessed* (``backbone.preprocess``). Returns
    ``[stem (after its avg-pool), layer1, layer2, layer3, layer4]``; the attention
    pool is not run. Differentiable w.r.t. ``pixels``.
    """
    _require_resnet(backbone)
    v = backbone.visual
    x = pixels.to(device=backbone.device, dtype=backbone.dtype)
    if hasattr(v, "stem"):
        x = v.stem(x)
    else:  # older open_clip: same layers, inline
        x = v.act1(v.bn1(v.conv1(x)))
        x = v.act2(v.bn2(v.conv2(x)))
        x = v.avgpool(v.act3(v.bn3(v.conv3(x))))
    maps = [x]
    for layer in (v.layer1, v.layer2, v.layer3, v.layer4):
        x = layer(x)
        maps.append(x)
    return maps


def identity_loss_from_features(features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor],
                                alphas: Sequence[float] = ENHANCEMENT_ALPHAS, *,
                                scale: float = 1.0) -> torch.Tensor:
    """``scale * sum_batch sum_l alpha_l * MSE_l`` with ``MSE_l`` the per-image mean over ``[C, H, W]``."""
    if not (len(features_a) == len(features_b) == len(alphas)):
        raise ValueError(f"need one alpha per feature map: {len(alphas)} alphas, "
                         f"{len(features_a)} / {len(features_b)} maps")
    total = None
    for a, b, alpha in zip(features_a, features_b, alphas):
        if alpha == 0:
            continue
        per_image = (a.float() - b.float()).square().flatten(1).mean(1)  # [B]
        term = alpha * per_image
        total = term if total is None else total + term
    if total is None:
        return features_a[0].new_zeros(()).float()
    return scale * total.sum()


class IdentityLoss:
    """``L_identity(I_t, I_b)`` over the five ResNet maps (times ``scale``).

    Call with ``(enhanced, original)`` images in [0, 1], ``[B, 3, H, W]``. The
    original's features are computed without grad; gradients flow to ``enhanced``.
    """

    def __init__(self, backbone: CLIPBackbone, alphas: Sequence[float] = ENHANCEMENT_ALPHAS, *,
                 scale: float = 1.0, antialias: bool = False):
        if len(alphas) != 5:
            raise ValueError(f"the identity loss has 5 feature maps; got {len(alphas)} alphas")
        _require_resnet(backbone)
        self.backbone = backbone
        self.alphas = tuple(float(a) for a in alphas)
        self.scale = float(scale)
        self.antialias = antialias

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return resnet_feature_maps(self.backbone, self.backbone.preprocess(images, antialias=self.antialias))

    def __call__(self, enhanced: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(original)
        return identity_loss_from_features(self.features(enhanced), target, self.alphas, scale=self.scale)


# --------------------------------------------------------------------------- 4. prompt refinement
def margin_hinge(should_be_lower: torch.Tensor, should_be_higher: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch mean of ``max(0, should_be_lower - should_be_higher + margin)``
    (``nn.MarginRankingLoss(margin)(should_be_higher, should_be_lower, 1)``)."""
    return F.relu(should_be_lower - should_be_higher + margin).mean()


def ranking_loss(scores: dict[str, torch.Tensor], terms) -> torch.Tensor:
    """Sum of ``max(0, S(lower) - S(higher) + margin)`` over ``(higher, lower, margin)`` terms:
    the refinement losses for any ranking order and margins (the trainer's rankings: trainer/schedule.py)."""
    total = None
    for higher, lower, margin in terms:
        t = margin_hinge(scores[lower], scores[higher], float(margin))
        total = t if total is None else total + t
    return total
