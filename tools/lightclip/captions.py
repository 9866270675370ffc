"""The captions of each lighting condition (:data:`.lighting.CONDITIONS`).

The zero-shot prompts our scores use without a learned prompt pair
(``cliplit_core.clip.prompts.ZERO_SHOT_PROMPTS``: backlit, well-lit) are captions of
the backlit and well-lit conditions, so zero-shot scoring with them works on this CLIP.
The other captions word the same conditions differently, so the text tower learns the
condition, not one sentence.
"""
from __future__ import annotations

from cliplit_core.clip.prompts import NEGATIVE, POSITIVE, ZERO_SHOT_PROMPTS

CAPTIONS: dict[str, tuple[str, ...]] = {
    "well-lit": (
        ZERO_SHOT_PROMPTS[POSITIVE],
        "an evenly lit photo",
        "a well-exposed photo",
        "a photo in good light",
        "a well-lit photo of a subject",
    ),
    "backlit": (
        ZERO_SHOT_PROMPTS[NEGATIVE],
        "a backlit photo",
        "a dark subject against a bright background",
        "a silhouette in front of a bright sky",
        "a backlit subject",
    ),
    "under-exposed": (
        "an underexposed photo",
        "a dark photo",
        "a photo taken in dim light",
    ),
    "over-exposed": (
        "an overexposed photo",
        "a washed out photo",
        "a photo with blown out highlights",
    ),
}


def all_captions() -> tuple[list[str], list[int]]:
    """(every caption, the index of its condition in the order of :data:`CAPTIONS`)."""
    texts, owners = [], []
    for i, captions in enumerate(CAPTIONS.values()):
        texts += captions
        owners += [i] * len(captions)
    return texts, owners
