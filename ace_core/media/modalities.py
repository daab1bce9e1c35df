"""The media types the index handles, in one registry: adding one means an entry here and the
module that decodes and embeds it.

Each ``MediaKind`` says how its files are decoded and embedded, which item space it lives in
(the space's encoder embeds it and the space's text tower queries it; video shares the image
space), the HTTP content type of its files and how its thumbnail is drawn. Discovery decides a
file's kind from its content (discovery.py) and names one of these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ace_core.media import thumbnails
from ace_core.media.audio_decoding import decode_audio
from ace_core.media.decoding import Decoded, decode_image, decode_video

if TYPE_CHECKING:
    from ace_core.media.discovery import MediaFile
    from ace_core.media.embed_config import EmbedConfig, PipelineConfig
    from ace_core.media.encoders import Encoder


@dataclass(frozen=True)
class MediaKind:
    """One media type: its decoder, encoder, item space, content type and thumbnail."""

    name: str  # "image", "audio", "video": the items' modality
    space: str  # the item space (a kind's name): its encoder and text tower
    mime_prefix: str  # content type family of its files ("video/")
    # (file, pipeline config, image model input side or None) -> decoded media
    decode: Callable[[MediaFile, PipelineConfig, int | None], Decoded]
    # (embed config, device, the space's encoder when this kind shares one) -> encoder
    build_encoder: Callable[[EmbedConfig, Any, Encoder | None], Encoder]
    thumbnail: Callable[[str, int], Any]  # (file, size) -> a PIL image at most size wide


# the encoders import torch when first built, and decoding and thumbnails import PIL and PyAV
# when first used: the command line reads this registry without loading them


def _decode_image(f: MediaFile, config: PipelineConfig, side: int | None) -> Decoded:
    side = side if config.jpeg_draft else None
    return decode_image(f.abs_path, max_pixels=config.max_pixels, min_side=side)


def _decode_audio(f: MediaFile, config: PipelineConfig, side: int | None) -> Decoded:
    from ace_core.media.encoders import CLAP_SAMPLE_RATE

    return decode_audio(f.abs_path, sample_rate=CLAP_SAMPLE_RATE)


def _decode_video(f: MediaFile, config: PipelineConfig, side: int | None) -> Decoded:
    video = config.video
    return decode_video(f.abs_path, n_frames=video.n_frames, timeout_s=video.timeout_s)


def _image_encoder(config: EmbedConfig, device, shared: Encoder | None) -> Encoder:
    from ace_core.media.encoders import OpenClipImageEncoder

    return OpenClipImageEncoder(config.image, device=device)


def _audio_encoder(config: EmbedConfig, device, shared: Encoder | None) -> Encoder:
    from ace_core.media.audio_encoder import ClapAudioEncoder

    return ClapAudioEncoder(config.audio, device=device)


def _video_encoder(config: EmbedConfig, device, shared: Encoder | None) -> Encoder:
    from ace_core.media.encoders import OpenClipImageEncoder
    from ace_core.media.video_encoder import FrameVideoEncoder

    image = shared or OpenClipImageEncoder(config.image, device=device)
    return FrameVideoEncoder(image, config.pipeline.video)


KINDS: dict[str, MediaKind] = {
    kind.name: kind
    for kind in (
        MediaKind(
            "image",
            "image",
            "image/",
            _decode_image,
            _image_encoder,
            thumbnails.image_thumbnail,
        ),
        MediaKind(
            "audio",
            "audio",
            "audio/",
            _decode_audio,
            _audio_encoder,
            thumbnails.waveform_thumbnail,
        ),
        MediaKind(
            "video",
            "image",
            "video/",
            _decode_video,
            _video_encoder,
            thumbnails.video_thumbnail,
        ),
    )
}
MODALITY_NAMES: tuple[str, ...] = tuple(KINDS)
SPACE_OF_MODALITY: dict[str, str] = {name: kind.space for name, kind in KINDS.items()}


def media_kind(modality: str) -> MediaKind:
    try:
        return KINDS[modality]
    except KeyError:
        raise ValueError(f"unknown modality {modality!r}") from None


def kinds_sharing_spaces(modalities: set[str]) -> set[str]:
    """``modalities`` with every kind that shares an item space with one of them."""
    spaces = {SPACE_OF_MODALITY[m] for m in modalities}
    return {name for name, space in SPACE_OF_MODALITY.items() if space in spaces}


def thumbnail_jpeg(location: str, modality: str, size: int = 256) -> bytes:
    """A small JPEG of a media file, drawn as its kind draws thumbnails."""
    return thumbnails.jpeg_thumbnail(media_kind(modality).thumbnail(location, size), size)
