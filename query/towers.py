"""The text towers of a version's item encoders, for zero-shot queries.

They are rebuilt from the version's embedding config (the same weights options the index was
built with) and must hash to the ``text_sha256`` its manifest recorded, so a query always uses
the towers that made the version's embeddings and IDs.
"""

from __future__ import annotations

from collections.abc import Callable

from ace_core.errors import AceInputError
from ace_core.media.embed_config import EmbedConfig
from ace_core.media.modalities import SPACE_OF_MODALITY
from ace_core.media.pipeline import build_encoder


def recorded_space(encoders: dict, space: str) -> dict | None:
    """The manifest's record of the encoder behind an item space (None: no such items)."""
    for modality, of in SPACE_OF_MODALITY.items():
        if of == space and modality in encoders:
            return encoders[modality]
    return None


def load_text_towers(
    version: str, embed: EmbedConfig, encoders: dict, *, device=None
) -> dict[str, Callable]:
    """space -> embed_text for the spaces the version has items in; checked against the
    manifest's text_sha256 (AceInputError when the weights are not those of the version)."""
    towers = {}
    for space in sorted(set(SPACE_OF_MODALITY.values())):
        if recorded_space(encoders, space) is not None:
            towers[space] = checked_encoder(version, space, embed, encoders, device).embed_text
    return towers


def checked_encoder(version: str, space: str, embed: EmbedConfig, encoders: dict, device=None):
    """The encoder of ``space`` built from the version's recorded weights, checked to be the
    one that made the version (its text tower's sha256, recorded in the manifest)."""
    record = recorded_space(encoders, space)
    if record is None:
        raise AceInputError(f"version {version} has no {space} items")
    if not record.get("text_sha256"):
        raise AceInputError(
            f"version {version} predates recorded text towers; re-index it for zero-shot "
            f"queries, or query with --path captions"
        )
    encoder = _tower(version, space, embed, device)
    if encoder.text_sha256 != record["text_sha256"]:
        raise AceInputError(
            f"the {space} text tower built from {record['weights_source']} is not the one "
            f"that made version {version} (text_sha256 differs): restore its weights, "
            f"or query with --path captions"
        )
    return encoder


def _tower(version: str, space: str, embed: EmbedConfig, device):
    """The encoder of a space from the version's recorded weights; a failure to build it
    names those weights and what a query can do (a query has no weights options)."""
    try:
        return build_encoder(space, embed, device=device)
    except AceInputError as e:
        weights = embed.image.pretrained if space == "image" else embed.audio.checkpoint
        raise AceInputError(
            f"the {space} encoder of version {version} cannot be built from its recorded "
            f"weights {weights!r} ({str(e).split(';')[0]}); put that file back, or query "
            f"with --path captions"
        ) from None
