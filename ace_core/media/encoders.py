"""Media encoders behind one small interface.

Every encoder has ``name``, ``modality``, ``dim``, ``weights_source``, ``weights_sha256``,
``prepare(decoded) -> input`` (CPU work, run in the decoding workers) and
``embed(inputs) -> float32 (n, dim)``, L2-normalised.

- images: open_clip (model name + pretrained tag or local checkpoint path);
- video: the same image encoder on sampled frames, mean-pooled, re-normalised;
- audio: laion-clap HTSAT, 10 s windows at 48 kHz, mean-pooled over windows.

With no weights available an encoder is built with randomly initialised weights of the same
architecture (seeded, so reproducible) and says so in one warning line.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ace_core.errors import AceInputError
from ace_core.media.decoding import Decoded

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parents[1] / "model_configs"
CLAP_SAMPLE_RATE = 48_000
CLAP_WINDOW = 480_000  # 10 s at 48 kHz: the clip length HTSAT was trained on
CLAP_EMBED_DIM = 512  # laion-clap's joint embedding width


class Encoder(Protocol):
    name: str
    modality: str
    dim: int
    weights_source: str  # "random-init", a pretrained tag, or a local path
    weights_sha256: str

    def prepare(self, decoded: Decoded) -> Any: ...

    def embed(self, inputs: Sequence[Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class ImageEncoderConfig:
    model: str = "ViT-B-32"  # open_clip model name (built-in or shipped config, e.g. ace-tiny-vit)
    pretrained: str | None = None  # open_clip pretrained tag, or a local checkpoint path
    seed: int = 0  # seed of the random initialisation used when no weights are available


@dataclass(frozen=True)
class AudioEncoderConfig:
    model: str = "HTSAT-tiny"  # laion-clap audio model
    checkpoint: str | None = None  # local laion-clap checkpoint (.pt or .safetensors)
    enable_fusion: bool = False  # laion-clap feature fusion (needs a fusion checkpoint)
    max_windows: int = 6  # long clips: at most this many 10 s windows, evenly spread, pooled
    seed: int = 0


@dataclass(frozen=True)
class VideoConfig:
    n_frames: int = 8  # uniformly sampled frames per video
    timeout_s: float = 60.0  # per-file decord timeout before the PyAV fallback


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def state_dict_sha256(module: torch.nn.Module) -> str:
    """sha256 over parameter names, shapes and bytes in sorted order (weights identity)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(
            t.detach().to("cpu").contiguous().numpy().tobytes()
            if t.dtype != torch.bfloat16
            else t.detach().float().cpu().numpy().tobytes()
        )
    return h.hexdigest()


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def to_common_dim(x: np.ndarray, dim: int) -> np.ndarray:
    """Bring (n, d) embeddings to ``dim`` by zero-padding (d < dim); re-normalised.

    Zero-padding keeps every cosine similarity within a modality unchanged, which is what the
    clustering uses; it never truncates, so ``dim`` is the largest encoder dimension.
    """
    n, d = x.shape
    if d == dim:
        return np.ascontiguousarray(x, dtype=np.float32)
    if d > dim:
        raise ValueError(f"cannot bring {d}-d embeddings down to {dim}-d")
    out = np.zeros((n, dim), dtype=np.float32)
    out[:, :d] = x
    return l2_normalize(out)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


@contextmanager
def _quiet_build():
    """Silence third-party chatter while building a model (open_clip logs on the root
    logger; timm and torch emit deprecation warnings): our own one-line warning says it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class _seeded:
    """Seed torch's CPU generator inside a block without touching the caller's RNG state."""

    def __init__(self, seed: int):
        self.seed = seed
        self._fork = None

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


# ----------------------------------------------------------------------------- open_clip


def _register_shipped_configs() -> None:
    import open_clip

    if "ace-tiny-vit" not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIG_DIR)


class OpenClipImageEncoder:
    """open_clip image tower. ``embed`` takes preprocessed tensors (3, H, W)."""

    modality = "image"

    def __init__(self, config: ImageEncoderConfig = ImageEncoderConfig(), *, device=None):
        import open_clip

        _register_shipped_configs()
        self.config = config
        self.device = torch.device(device) if device else default_device()
        self.name = f"open_clip:{config.model}"
        self.model, self.weights_source = self._build(open_clip, config)
        self.model.eval().to(self.device)
        self.preprocess = open_clip.image_transform(
            self.model.visual.image_size,
            is_train=False,
            mean=getattr(self.model.visual, "image_mean", None),
            std=getattr(self.model.visual, "image_std", None),
        )
        self.dim = int(
            self.model.text_projection.shape[1]
            if getattr(self.model, "text_projection", None) is not None
            else self._probe_dim()
        )
        self.weights_sha256 = state_dict_sha256(self.model.visual)

    @staticmethod
    def _build(open_clip, config: ImageEncoderConfig):
        if config.pretrained:
            try:
                with _quiet_build():
                    model = open_clip.create_model(
                        config.model,
                        pretrained=config.pretrained,
                        require_pretrained=True,
                        weights_only=True,
                    )
                return model, config.pretrained
            except Exception as e:  # noqa: BLE001 - offline tag, missing or unusable file
                raise AceInputError(
                    f"--image-weights {config.pretrained!r} cannot be loaded for {config.model} "
                    f"({_first_line(e)}); give a local checkpoint of that model, or leave the "
                    f"option out for a random initialisation"
                ) from e
        logger.warning(
            "%s: no pretrained weights given; using random initialisation (seed %d)",
            config.model,
            config.seed,
        )
        with _seeded(config.seed), _quiet_build():
            model = open_clip.create_model(config.model, pretrained=None)
        return model, "random-init"

    def _probe_dim(self) -> int:
        size = self.model.visual.image_size
        size = size if isinstance(size, tuple) else (size, size)
        with torch.inference_mode():
            return int(
                self.model.encode_image(torch.zeros(1, 3, *size, device=self.device)).shape[1]
            )

    def prepare(self, decoded: Decoded) -> torch.Tensor:
        return self.preprocess(decoded.data)

    def embed_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) float -> (n, dim) float32 on CPU, not normalised."""
        with torch.inference_mode(), _autocast(self.device):
            out = self.model.encode_image(x.to(self.device, non_blocking=True))
        return out.float().cpu()

    def embed(self, inputs: Sequence[torch.Tensor]) -> np.ndarray:
        return l2_normalize(self.embed_tensor(torch.stack(list(inputs))).numpy())


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

    def prepare(self, decoded: Decoded) -> torch.Tensor:
        from PIL import Image

        return torch.stack([self.image.preprocess(Image.fromarray(f)) for f in decoded.data])

    def embed(self, inputs: Sequence[torch.Tensor]) -> np.ndarray:
        counts = [t.shape[0] for t in inputs]
        frames = l2_normalize(self.image.embed_tensor(torch.cat(list(inputs))).numpy())
        pooled = [chunk.mean(axis=0) for chunk in np.split(frames, np.cumsum(counts)[:-1])]
        return l2_normalize(np.stack(pooled))
