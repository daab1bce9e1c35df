"""The video encoder: the image encoder on a clip's sampled frames, mean-pooled."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ace_core.media.decoding import Decoded
from ace_core.media.encoders import OpenClipImageEncoder, VideoConfig, l2_normalize


class FrameVideoEncoder:
    """Video = the image encoder on sampled frames, mean-pooled, re-normalised."""

    modality = "video"

    def __init__(self, image_encoder: OpenClipImageEncoder, config: VideoConfig = VideoConfig()):
        self.image = image_encoder
        self.config = config
        self.name = f"{image_encoder.name}+mean{config.n_frames}frames"
        self.dim = image_encoder.dim
        self.weights_source = image_encoder.weights_source
        self.weights_sha256 = image_encoder.weights_sha256
        self.embed_text = image_encoder.embed_text

    @property
    def text_sha256(self) -> str:
        return self.image.text_sha256

    def prepare(self, decoded: Decoded) -> torch.Tensor:
        from PIL import Image

        return torch.stack([self.image.preprocess(Image.fromarray(f)) for f in decoded.data])

    def embed(self, inputs: Sequence[torch.Tensor]) -> np.ndarray:
        counts = [t.shape[0] for t in inputs]
        frames = l2_normalize(self.image.embed_tensor(torch.cat(list(inputs))).numpy())
        pooled = [chunk.mean(axis=0) for chunk in np.split(frames, np.cumsum(counts)[:-1])]
        return l2_normalize(np.stack(pooled))
