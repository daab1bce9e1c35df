"""ace-tiny-clap: a small audio-text model in laion-clap's interface.

It answers the calls ACE makes of ``laion_clap.CLAP_Module`` (``get_audio_embedding_from_data``
on (N, 480000) windows at 48 kHz, ``get_text_embedding`` on a list of texts) and keeps its
weights under ``model.audio_branch`` / ``model.text_branch``, so it loads through the same
``--audio-checkpoint`` option (``--audio-model ace-tiny-clap``). It is trained by
``ace tiny-encoders`` on the synthetic generator only and knows nothing of real sound.

- audio: a fixed log-mel front end (64 bands, 25 ms hop; no weights) over the 10 s window,
  three strided 1-d convolutions over time, mean+max pooling, a linear projection;
- text: open_clip's text transformer (its BPE tokenizer ships with open_clip, no download).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ace_core.offline import hub_offline

TINY_CLAP_NAME = "ace-tiny-clap"
TINY_CLAP_DIM = 256
SAMPLE_RATE = 48_000
N_FFT, HOP, N_MELS = 2048, 1200, 64
TEXT_CFG = {"context_length": 64, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft // 2 + 1) from 30 Hz to 16 kHz (HTK mel scale)."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(30.0), mel(16_000.0), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


class LogMel(nn.Module):
    """(N, samples) -> (N, N_MELS, frames) log-mel power; no trainable weights."""

    def __init__(self):
        super().__init__()
        self.register_buffer("fb", torch.from_numpy(mel_filterbank()), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.float(), N_FFT, HOP, window=self.window, return_complex=True)
        power = spec.abs().pow(2)
        return torch.log(self.fb @ power + 1e-6) / 10.0


class AudioBranch(nn.Module):
    def __init__(self, dim: int = TINY_CLAP_DIM, width: int = 128):
        super().__init__()
        self.mel = LogMel()
        self.convs = nn.Sequential(
            nn.Conv1d(N_MELS, width, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv1d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.proj = nn.Linear(4 * width, dim)

    def forward_mel(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.convs(mel)
        return self.proj(torch.cat([h.mean(-1), h.amax(-1)], dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_mel(self.mel(x))


class TinyClapModel(nn.Module):
    def __init__(self, dim: int = TINY_CLAP_DIM):
        super().__init__()
        from open_clip.model import _build_text_tower

        self.audio_branch = AudioBranch(dim)
        self.text_branch = _build_text_tower(dim, TEXT_CFG)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))


class TinyClapModule:
    """The laion_clap.CLAP_Module calls ACE uses, over a TinyClapModel."""

    def __init__(self, device: str | torch.device = "cpu"):
        hub_offline()
        import open_clip

        self.model = TinyClapModel()
        self.tokenizer = open_clip.SimpleTokenizer(context_length=TEXT_CFG["context_length"])
        self.device = torch.device(device)

    def get_audio_embedding_from_data(self, x, use_tensor: bool = True):
        x = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x, np.float32))
        emb = F.normalize(self.model.audio_branch(x.to(self.device)), dim=-1)
        return emb if use_tensor else emb.detach().cpu().numpy()

    def get_text_embedding(self, texts: list[str], use_tensor: bool = True):
        tokens = self.tokenizer(list(texts)).to(self.device)
        emb = F.normalize(self.model.text_branch(tokens), dim=-1)
        return emb if use_tensor else emb.detach().cpu().numpy()
