"""Which weights an encoder loads: the names users give and what they resolve to.

``"default"``: the model's standard pretrained weights (an open_clip tag; the LAION-CLAP
general checkpoint), used where cached or fetchable, else one line naming the options.
``"random"``: an explicit seeded random initialisation (``None`` in older configs means it
too). Anything else: an open_clip tag or a local checkpoint path.
"""

from __future__ import annotations

from ace_core.errors import AceInputError

DEFAULT_WEIGHTS = "default"  # the model's standard pretrained weights
RANDOM_WEIGHTS = "random"  # explicit random initialisation (None in older configs means it too)
STANDARD_IMAGE_TAGS = {"ViT-B-32": "laion2b_s34b_b79k"}
TINY_HINT = (
    "the project's tiny encoders for the synthetic world "
    "(`ace tiny-encoders DIR` prints their options)"
)


def is_random(weights: str | None) -> bool:
    return weights is None or weights == RANDOM_WEIGHTS


def standard_image_tag(open_clip, model: str) -> str:
    tag = STANDARD_IMAGE_TAGS.get(model)
    tags = tag and [tag] or open_clip.list_pretrained_tags_by_model(model)
    if not tags:
        raise AceInputError(
            f"{model} has no standard pretrained weights; give --image-weights FILE, "
            f"--image-weights random, or {TINY_HINT}"
        )
    return tags[0]
