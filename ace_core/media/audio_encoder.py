"""laion-clap audio encoder: HTSAT over 10 s windows at 48 kHz, mean-pooled over windows."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch

from ace_core.errors import AceInputError
from ace_core.media.decoding import Decoded
from ace_core.media.encoders import (
    CLAP_EMBED_DIM,
    CLAP_WINDOW,
    AudioEncoderConfig,
    _autocast,
    _first_line,
    _quiet_build,
    _seeded,
    default_device,
    l2_normalize,
    state_dict_sha256,
)
from ace_core.media.tiny_clap import TINY_CLAP_DIM, TINY_CLAP_NAME, TinyClapModule
from ace_core.media.weights import DEFAULT_WEIGHTS, TINY_HINT, is_random
from ace_core.offline import hub_offline

logger = logging.getLogger(__name__)


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
    """laion-clap audio tower (HTSAT), or the project's ace-tiny-clap in the same interface.
    ``embed`` takes (w, 480000) window stacks."""

    modality = "audio"

    def __init__(self, config: AudioEncoderConfig = AudioEncoderConfig(), *, device=None):
        self.config = config
        self.device = torch.device(device) if device else default_device()
        self.name = f"laion_clap:{config.model}"
        self.module, self.weights_source = self._build(config)
        self.module.model.eval().to(self.device)
        self.module.device = self.device
        self.dim = audio_embed_dim(config)
        self.weights_sha256 = state_dict_sha256(self.module.model.audio_branch)

    def _build(self, config: AudioEncoderConfig):
        with _seeded(config.seed), _quiet_build():
            module = _new_module(config)
        if is_random(config.checkpoint):
            logger.warning(
                "%s: random initialisation asked for (seed %d)", config.model, config.seed
            )
            return module, "random-init"
        path = config.checkpoint
        if path == DEFAULT_WEIGHTS:
            path = standard_clap_checkpoint(module, config)
        try:
            load_clap_checkpoint(module.model, path)
        except Exception as e:  # noqa: BLE001 - missing, pickled, garbage, wrong model
            raise AceInputError(
                f"--audio-checkpoint {path!r} cannot be loaded for {config.model} "
                f"({_first_line(e)}); give a checkpoint of that model (.pt or .safetensors), "
                f"--audio-checkpoint random, or {TINY_HINT}"
            ) from e
        return module, path

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

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (n, dim) L2-normalised, through the model's text tower."""
        try:
            with torch.inference_mode():
                emb = self.module.get_text_embedding(list(texts), use_tensor=True)
        except Exception as e:  # noqa: BLE001 - laion-clap's tokenizer is a hub download
            raise AceInputError(
                f"the {self.config.model} text tower cannot run here ({_first_line(e)}); "
                f"laion-clap's text tokenizer must be in the Hugging Face cache"
            ) from e
        return l2_normalize(emb.float().cpu().numpy())

    @cached_property  # hashed once per encoder, not once per shard that records it
    def text_sha256(self) -> str:
        return state_dict_sha256(self.module.model, keep=lambda n: not n.startswith("audio_"))


def audio_embed_dim(config: AudioEncoderConfig) -> int:
    return TINY_CLAP_DIM if config.model == TINY_CLAP_NAME else CLAP_EMBED_DIM


def _new_module(config: AudioEncoderConfig):
    if config.model == TINY_CLAP_NAME:
        return TinyClapModule()
    hub_offline()
    import laion_clap

    return laion_clap.CLAP_Module(
        enable_fusion=config.enable_fusion, amodel=config.model, tmodel="transformer", device="cpu"
    )


def standard_clap_checkpoint(module, config: AudioEncoderConfig) -> str:
    """The LAION-CLAP general checkpoint: laion-clap's own cached file, fetched by laion-clap
    when downloads are allowed (HF_HUB_OFFLINE=0); otherwise one line naming the options."""
    if config.model == TINY_CLAP_NAME:
        raise AceInputError(
            f"{TINY_CLAP_NAME} has no standard weights; give --audio-checkpoint FILE "
            f"(ace tiny-encoders DIR builds one) or --audio-checkpoint random"
        )
    hub_offline()
    import laion_clap

    name = "630k-audioset-fusion-best.pt" if config.enable_fusion else "630k-audioset-best.pt"
    path = os.path.join(os.path.dirname(laion_clap.__file__), name)
    if not os.path.isfile(path) and os.environ.get("HF_HUB_OFFLINE") == "0":
        with _quiet_build():
            module.load_ckpt()  # downloads the general checkpoint next to the package
    if not os.path.isfile(path):
        raise AceInputError(
            f"the LAION-CLAP general checkpoint is not cached at {path} and downloads are off; "
            f"give --audio-checkpoint FILE, --audio-checkpoint random, or {TINY_HINT} "
            f"(HF_HUB_OFFLINE=0 lets laion-clap fetch it)"
        )
    return path


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
