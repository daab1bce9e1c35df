"""Media encoders behind one small interface.

Every encoder has ``name``, ``modality``, ``dim``, ``weights_source``, ``weights_sha256``,
``prepare(decoded) -> input`` (CPU work, run in the decoding workers) and
``embed(inputs) -> float32 (n, dim)``, L2-normalised.

- images: open_clip (model name + pretrained tag or local checkpoint path);
- video: the same image encoder on sampled frames, mean-pooled, re-normalised;
- audio: laion-clap HTSAT, 10 s windows at 48 kHz, mean-pooled over windows.

Which weights load ("default", "random", a tag or a file): ace_core/media/weights.py.

Each encoder also exposes its model's text tower: ``embed_text(texts) -> (n, dim)`` in the same
space as its items, and ``text_sha256`` identifying those weights (recorded per version, so the
zero-shot query path uses the towers that made the IDs).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ace_core.errors import AceInputError
from ace_core.media.decoding import Decoded
from ace_core.media.weights import DEFAULT_WEIGHTS, TINY_HINT, is_random, standard_image_tag
from ace_core.offline import hub_offline

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

    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...

    @property
    def text_sha256(self) -> str: ...


@dataclass(frozen=True)
class ImageEncoderConfig:
    model: str = "ViT-B-32"  # open_clip model name (built-in or shipped config: ace-tiny-clip)
    pretrained: str | None = DEFAULT_WEIGHTS  # "default", "random", a tag or a local checkpoint
    seed: int = 0  # seed of the random initialisation ("random")


@dataclass(frozen=True)
class AudioEncoderConfig:
    model: str = "HTSAT-tiny"  # laion-clap audio model, or the project's "ace-tiny-clap"
    checkpoint: str | None = DEFAULT_WEIGHTS  # "default", "random", or a local checkpoint
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


def state_dict_sha256(module: torch.nn.Module, keep=lambda name: True) -> str:
    """sha256 over parameter names, shapes and bytes in sorted order (weights identity);
    ``keep(name)`` selects the entries (e.g. a text tower's)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        if not keep(name):
            continue
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
    root.setLevel(logging.CRITICAL)  # our own one-line error says what failed
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
    hub_offline()
    import open_clip

    if "ace-tiny-clip" not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIG_DIR)


class OpenClipImageEncoder:
    """open_clip image tower. ``embed`` takes preprocessed tensors (3, H, W)."""

    modality = "image"

    def __init__(self, config: ImageEncoderConfig = ImageEncoderConfig(), *, device=None):
        hub_offline()
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
        self._tokenizer = None

    @staticmethod
    def _build(open_clip, config: ImageEncoderConfig):
        if is_random(config.pretrained):
            logger.warning(
                "%s: random initialisation asked for (seed %d)", config.model, config.seed
            )
            with _seeded(config.seed), _quiet_build():
                return open_clip.create_model(config.model, pretrained=None), "random-init"
        weights = config.pretrained
        if weights == DEFAULT_WEIGHTS:
            weights = standard_image_tag(open_clip, config.model)
        try:
            with _quiet_build():
                model = open_clip.create_model(
                    config.model, pretrained=weights, require_pretrained=True, weights_only=True
                )
            return model, weights
        except Exception as e:  # noqa: BLE001 - offline tag, missing or unusable file
            what = (
                f"the standard {config.model} weights ({weights}) are not cached here and "
                f"cannot be fetched"
                if config.pretrained == DEFAULT_WEIGHTS
                else f"--image-weights {weights!r} cannot be loaded for {config.model}"
            )
            raise AceInputError(
                f"{what} ({_first_line(e)}); give --image-weights FILE (a local open_clip "
                f"checkpoint of that model), --image-weights random, or {TINY_HINT}"
            ) from e

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (n, dim) L2-normalised, in this encoder's item space (its text tower)."""
        hub_offline()
        import open_clip

        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(self.config.model)
        with torch.inference_mode():
            out = self.model.encode_text(self._tokenizer(list(texts)).to(self.device))
        return l2_normalize(out.float().cpu().numpy())

    @cached_property  # hashed once per encoder, not once per shard that records it
    def text_sha256(self) -> str:
        return state_dict_sha256(self.model, keep=lambda name: not name.startswith("visual."))

    @property
    def input_side(self) -> int:
        """The shorter side of the model's input, in px."""
        size = self.model.visual.image_size
        return min(size) if isinstance(size, tuple) else int(size)

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
