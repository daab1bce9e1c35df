"""Small aligned encoders trained by the project on the synthetic generator (``ace tiny-encoders``).

No pretrained weights reach the machines the project is built on, and randomly initialised
encoders put no meaning into semantic IDs. These two models are trained contrastively (CLIP's
symmetric InfoNCE) on items drawn from the scenes world (``ace_core.world``):

- ``ace-tiny-clip``: an open_clip custom config (64 px ViT, 3 layers; 2-layer text tower),
  image + text towers trained together; loads with
  ``--image-model ace-tiny-clip --image-weights DIR/ace-tiny-clip.safetensors``;
- ``ace-tiny-clap``: the laion-clap interface (ace_core.media.tiny_clap), audio branch over a
  fixed log-mel front end + text tower trained together; loads with
  ``--audio-model ace-tiny-clap --audio-checkpoint DIR/ace-tiny-clap.safetensors``.

They only understand the scenes world (``ace_core.world``: objects' colours, shapes, sizes
and places, backgrounds; sound events' kinds, registers, timbres and loudness, tempo and
envelope). Training is seeded; a folder that already holds a build of the
same config (checked by sha256) is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ace_core.offline import hub_offline
from ace_core.world.corpus import draw_item

logger = logging.getLogger(__name__)

CLIP_NAME, CLAP_NAME = "ace-tiny-clip", "ace-tiny-clap"
MANIFEST = "tiny-encoders.json"
N_CAPTIONS = 6  # captions kept per training item (shorter lists are cycled)


@dataclass(frozen=True)
class TinyEncoderConfig:
    seed: int = 0  # generator and initialisation seed of the training run
    image_items: int = 8000  # distinct pictures of the scenes world in the training pool
    audio_items: int = 3000  # distinct sounds of the scenes world in the training pool
    image_steps: int = 900
    audio_steps: int = 600
    batch_size: int = 128
    lr: float = 2e-3
    eval_seed: int = 9_999  # generator seed of the held-out evaluation items
    eval_items: int = 1000  # recall is reported among all of them and among the first 100


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def index_args(out: Path) -> list[str]:
    """The ``ace index`` options that use the encoders in ``out``."""
    return [
        "--image-model",
        CLIP_NAME,
        "--image-weights",
        str(out / f"{CLIP_NAME}.safetensors"),
        "--audio-model",
        CLAP_NAME,
        "--audio-checkpoint",
        str(out / f"{CLAP_NAME}.safetensors"),
    ]


def build_tiny_encoders(
    out: str | Path,
    config: TinyEncoderConfig = TinyEncoderConfig(),
    *,
    progress: Callable[[str], None] = logger.info,
) -> dict:
    """Train (or reuse) both encoders into ``out``; returns the manifest:
    ``{"args", "zero_shot": {"image": {"among_100": {"R@1", "R@10"}, "among_1000": ...},
    "audio": ...}, "reused", ...}``."""
    out = Path(out)
    reused = _reusable(out, config)
    if reused is not None:
        return {**reused, "args": index_args(out), "reused": True}
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        clip_model, clip_tok = train_tiny_clip(config, progress)
        clap = train_tiny_clap(config, progress)
    clip_model.half().float()  # saved in float16 (half the size): measure what is saved
    clap.model.half().float()
    zero_shot = {
        "image": zero_shot_images(clip_model, clip_tok, config),
        "audio": zero_shot_audio(clap, config),
    }
    files = {
        CLIP_NAME: _save(clip_model.state_dict(), out / f"{CLIP_NAME}.safetensors"),
        CLAP_NAME: _save(clap.model.state_dict(), out / f"{CLAP_NAME}.safetensors"),
    }
    manifest = {"config": asdict(config), "files": files, "zero_shot": zero_shot}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return {**manifest, "args": index_args(out), "reused": False}


def _reusable(out: Path, config: TinyEncoderConfig) -> dict | None:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("config") != asdict(config):
        return None
    for name, digest in manifest.get("files", {}).items():
        path = out / f"{name}.safetensors"
        if not path.is_file() or sha256_file(path) != digest:
            return None
    return manifest


def _save(state: dict, path: Path) -> str:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().half().contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)
    return sha256_file(path)


# ----------------------------------------------------------------------------- training data


def _caption_tokens(tokenizer, captions: list[list[str]]) -> torch.Tensor:
    """(n, N_CAPTIONS, context) token ids; each item's list is cycled to N_CAPTIONS."""
    flat = [caps[j % len(caps)] for caps in captions for j in range(N_CAPTIONS)]
    tokens = tokenizer(flat)
    return tokens.view(len(captions), N_CAPTIONS, -1)


def image_pool(n: int, seed: int, preprocess) -> tuple[torch.Tensor, list[list[str]]]:
    """The first ``n`` pictures of the scenes world's ``seed``, preprocessed, and captions."""
    from PIL import Image

    pixels, captions = [], []
    for i in range(n):
        _, caps, arr = draw_item(seed, "image", i)
        pixels.append(preprocess(Image.fromarray(arr)))
        captions.append(caps)
    return torch.stack(pixels), captions


def audio_pool(n: int, seed: int, mel) -> tuple[torch.Tensor, list[list[str]]]:
    """Log-mels of the first ``n`` sounds of the scenes world's ``seed``, and captions."""
    from ace_core.media.audio_encoder import audio_windows

    mels, captions = [], []
    with torch.no_grad():
        for start in range(0, n, 64):
            drawn = [draw_item(seed, "audio", i) for i in range(start, min(start + 64, n))]
            windows = [audio_windows(x, max_windows=1)[0] for _, _, x in drawn]
            mels.append(mel(torch.from_numpy(np.stack(windows))))
            captions += [caps for _, caps, _ in drawn]
    return torch.cat(mels), captions


# ----------------------------------------------------------------------------- training


def contrastive_loss(media: torch.Tensor, text: torch.Tensor, logit_scale) -> torch.Tensor:
    m, t = F.normalize(media, dim=-1), F.normalize(text, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * m @ t.T
    target = torch.arange(len(m))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _train(name, params, steps, config, n_items, loss_of_batch, progress) -> None:
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.05)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)),
    )
    g = torch.Generator().manual_seed(config.seed)
    for step in range(steps):
        idx = torch.randperm(n_items, generator=g)[: config.batch_size]
        caption = torch.randint(N_CAPTIONS, (len(idx),), generator=g)
        loss = loss_of_batch(idx, caption)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 10) == 0 or step + 1 == steps:
            progress(f"{name}: step {step + 1}/{steps} loss {loss.item():.3f}")


def train_tiny_clip(config: TinyEncoderConfig, progress):
    hub_offline()
    import open_clip

    from ace_core.media.encoders import _quiet_build, _register_shipped_configs

    _register_shipped_configs()
    with _quiet_build():
        model = open_clip.create_model(CLIP_NAME, pretrained=None)
    tokenizer = open_clip.get_tokenizer(CLIP_NAME)
    preprocess = _preprocess(model)
    progress(f"{CLIP_NAME}: drawing {config.image_items} pictures of the scenes world")
    pixels, captions = image_pool(config.image_items, config.seed, preprocess)
    tokens = _caption_tokens(tokenizer, captions)
    model.train()

    def loss(idx, caption):
        return contrastive_loss(
            model.encode_image(pixels[idx]),
            model.encode_text(tokens[idx, caption]),
            model.logit_scale,
        )

    _train(CLIP_NAME, model.parameters(), config.image_steps, config, len(pixels), loss, progress)
    return model.eval(), tokenizer


def train_tiny_clap(config: TinyEncoderConfig, progress):
    from ace_core.media.tiny_clap import TinyClapModule

    clap = TinyClapModule()
    model = clap.model
    progress(f"{CLAP_NAME}: drawing {config.audio_items} sounds of the scenes world")
    mels, captions = audio_pool(config.audio_items, config.seed + 1, model.audio_branch.mel)
    tokens = _caption_tokens(clap.tokenizer, captions)
    model.train()

    def loss(idx, caption):
        return contrastive_loss(
            model.audio_branch.forward_mel(mels[idx]),
            model.text_branch(tokens[idx, caption]),
            model.logit_scale,
        )

    _train(CLAP_NAME, model.parameters(), config.audio_steps, config, len(mels), loss, progress)
    model.eval()
    return clap


def _preprocess(model):
    hub_offline()
    import open_clip

    return open_clip.image_transform(model.visual.image_size, is_train=False)


# ----------------------------------------------------------------------------- zero-shot


def recalls_among(scores: np.ndarray) -> dict[str, dict[str, float]]:
    """Recall among all the items of ``scores`` and among its first 100 (when more)."""
    out = {f"among_{len(scores)}": recall_at(scores)}
    if len(scores) > 100:
        out = {"among_100": recall_at(scores[:100, :100]), **out}
    return out


def recall_at(scores: np.ndarray, ks=(1, 10)) -> dict[str, float]:
    """scores (queries, items) with query i's answer item i -> {"R@k": ...}."""
    truth = scores[np.arange(len(scores)), np.arange(len(scores))]
    rank = (scores > truth[:, None]).sum(1)
    return {f"R@{k}": round(float((rank < k).mean()), 4) for k in ks}


def _held_out_captions(captions: list[list[str]], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [caps[int(rng.integers(len(caps)))] for caps in captions]


@torch.no_grad()
def zero_shot_images(model, tokenizer, config: TinyEncoderConfig) -> dict[str, float]:
    pixels, captions = image_pool(config.eval_items, config.eval_seed, _preprocess(model))
    img = F.normalize(model.encode_image(pixels), dim=-1)
    txt = F.normalize(model.encode_text(tokenizer(_held_out_captions(captions, 1))), dim=-1)
    return recalls_among((txt @ img.T).numpy())


@torch.no_grad()
def zero_shot_audio(clap, config: TinyEncoderConfig) -> dict[str, float]:
    mels, captions = audio_pool(config.eval_items, config.eval_seed, clap.model.audio_branch.mel)
    aud = F.normalize(clap.model.audio_branch.forward_mel(mels), dim=-1)
    txt = clap.get_text_embedding(_held_out_captions(captions, 1))
    return recalls_among((txt @ aud.T).numpy())
