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
import os
import warnings
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ace_core.decode import Decoded

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
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
            except Exception as e:  # noqa: BLE001 - offline tag, missing file: fall back
                logger.warning(
                    "%s: pretrained weights %r unavailable (%s); using random initialisation",
                    config.model,
                    config.pretrained,
                    str(e).splitlines()[0][:160],
                )
        else:
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


# ----------------------------------------------------------------------------- laion-clap


def audio_windows(
    samples: np.ndarray, *, window: int = CLAP_WINDOW, max_windows: int = 6
) -> np.ndarray:
    """Split a clip into (w, window) float32 windows.

    Policy: a clip up to one window is repeat-padded to the window (CLAP's own "repeatpad");
    a longer clip is covered by ceil(len / window) windows, capped at ``max_windows`` whose
    starts are spread evenly over the clip; the last window is repeat-padded. Embeddings of
    the windows are mean-pooled and re-normalised by the encoder.
    """
    n = samples.shape[0]
    if n == 0:
        raise ValueError("empty audio")
    if n <= window:
        reps = int(np.ceil(window / n))
        return np.tile(samples, reps)[:window][None, :].astype(np.float32)
    count = min(int(np.ceil(n / window)), max_windows)
    starts = np.linspace(0, max(n - window, 0), count).astype(np.int64)
    return np.stack([samples[s : s + window] for s in starts]).astype(np.float32)


class ClapAudioEncoder:
    """laion-clap audio tower (HTSAT). ``embed`` takes (w, 480000) window stacks."""

    modality = "audio"

    def __init__(self, config: AudioEncoderConfig = AudioEncoderConfig(), *, device=None):
        self.config = config
        self.device = torch.device(device) if device else default_device()
        self.name = f"laion_clap:{config.model}"
        self.module, self.weights_source = self._build(config)
        self.module.model.eval().to(self.device)
        self.dim = CLAP_EMBED_DIM
        self.weights_sha256 = state_dict_sha256(self.module.model.audio_branch)

    def _build(self, config: AudioEncoderConfig):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # see ace_core/__init__.py
        with _quiet_build():
            import laion_clap

        def build():
            with _seeded(config.seed), _quiet_build():
                return laion_clap.CLAP_Module(
                    enable_fusion=config.enable_fusion,
                    amodel=config.model,
                    tmodel="transformer",
                    device="cpu",
                )

        module = build()
        if config.checkpoint:
            try:
                load_clap_checkpoint(module.model, config.checkpoint)
                return module, config.checkpoint
            except (OSError, RuntimeError, ValueError) as e:
                logger.warning(
                    "%s: checkpoint %r unusable (%s); using random initialisation",
                    config.model,
                    config.checkpoint,
                    str(e).splitlines()[0][:160],
                )
                module = build()
        else:
            logger.warning(
                "%s: no checkpoint given; using random initialisation (seed %d)",
                config.model,
                config.seed,
            )
        return module, "random-init"

    def prepare(self, decoded: Decoded) -> np.ndarray:
        return audio_windows(decoded.data, max_windows=self.config.max_windows)

    def embed(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        counts = [w.shape[0] for w in inputs]
        x = torch.from_numpy(np.concatenate(list(inputs))).to(self.device)
        with torch.inference_mode(), _autocast(self.device):
            emb = self.module.get_audio_embedding_from_data(x=x, use_tensor=True)
        emb = l2_normalize(emb.float().cpu().numpy())
        pooled = [chunk.mean(axis=0) for chunk in np.split(emb, np.cumsum(counts)[:-1])]
        return l2_normalize(np.stack(pooled))


def load_clap_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Load a laion-clap checkpoint without pickle (safetensors, or torch weights_only)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    audio_missing = [k for k in missing if k.startswith("audio_")]
    if audio_missing:
        raise ValueError(
            f"checkpoint lacks {len(audio_missing)} audio weights, e.g. {audio_missing[0]}"
        )
    if unexpected:
        logger.info("ignored %d unexpected keys in %s", len(unexpected), path)
