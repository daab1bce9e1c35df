"""Fine tokens: a residual-quantised VAE (RQ-VAE) in torch.

Encoder and decoder are residual MLPs (``x + MLP(x)``, last layer zero-initialised), so at
initialisation the model is exactly a residual quantizer whose codebooks are initialised by
k-means, level by level, on a sample of the training points (``init_points_per_code``), or
taken from a faiss.ResidualQuantizer trained on it (``init="faiss_rq"``). Training
(reconstruction + commitment loss, straight-through gradients) can then only move it away from
that starting point where the held-out reconstruction improves; the best held-out state is
kept (early stopping). Dead codes are replaced after every epoch by the residuals of random
training points at their level.

Shapes: x float32 (n, d); codes int64 (n, L); decode(codes) float32 (n, d).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ace_core.errors import AceInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RQVAEConfig:
    levels: int = 3  # residual codebooks (TIGER: 3)
    codebook_size: int = 256  # codes per level, a power of two (TIGER: 256; AVG: 1024)
    hidden_dim: int = 512  # width of the residual MLPs
    beta: float = 0.25  # commitment weight
    lr: float = 1e-3
    batch_size: int = 1024
    max_epochs: int = 50
    patience: int = 5  # epochs without held-out improvement before stopping
    val_fraction: float = 0.1  # held-out share for early stopping (at least 1 item)
    dead_code_min_uses: int = 1  # a code used fewer times per epoch is replaced
    init_points_per_code: int = 8  # initialisation sample (at least batch_size points)
    init: str = "kmeans"  # codebook initialisation: "kmeans" (per level) or "faiss_rq"
    min_points_per_code: int = 4  # small corpora: fewer codes per level (no dead levels)
    seed: int = 0


def effective_codebook_size(n: int, config: RQVAEConfig) -> int:
    """Codes per level for ``n`` items: the configured size, or on a small corpus the largest
    power of two with at least ``min_points_per_code`` items per code (at least 2). Every level
    sees all n residuals, so a codebook sized to n keeps each level's codes in use; a larger
    one lets the first level give most items a code of their own and leaves nothing for the
    next levels to encode (a dead level)."""
    k = config.codebook_size
    if k & (k - 1):
        raise ValueError(f"codebook_size must be a power of two, got {k}")
    fit = max(2, 1 << int(math.floor(math.log2(max(n / config.min_points_per_code, 2)))))
    if fit < k:
        logger.info("rq-vae: %d items; %d codes per level instead of %d", n, fit, k)
        return fit
    return k


class ResidualMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class RQVAE(nn.Module):
    def __init__(self, dim: int, config: RQVAEConfig, codebook_size: int):
        super().__init__()
        self.dim, self.config, self.codebook_size = dim, config, codebook_size
        self.encoder = ResidualMLP(dim, config.hidden_dim)
        self.decoder = ResidualMLP(dim, config.hidden_dim)
        self.codebooks = nn.Parameter(torch.zeros(config.levels, codebook_size, dim))

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy residual quantisation: codes (n, L) and the quantised latent (n, d)."""
        residual = z
        zq = torch.zeros_like(z)
        codes = []
        for level in range(self.config.levels):
            cb = self.codebooks[level]
            dist = torch.cdist(residual, cb)  # (n, K)
            idx = dist.argmin(dim=1)
            q = cb[idx]
            codes.append(idx)
            zq = zq + q
            residual = residual - q
        return torch.stack(codes, dim=1), zq

    def forward(self, x: torch.Tensor):
        z = self.encoder(x)
        codes, zq = self.quantize(z.detach())
        # codebook loss pulls codes to the latent; commitment pulls the latent to the codes
        loss_q = F.mse_loss(zq, z.detach()) + self.config.beta * F.mse_loss(z, zq.detach())
        z_st = z + (zq - z).detach()  # straight-through
        return self.decoder(z_st), codes, loss_q

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        zq = sum(self.codebooks[level][codes[:, level]] for level in range(self.config.levels))
        return self.decoder(zq)


@dataclass
class RQVAEFit:
    model: RQVAE
    epochs: int
    best_val_loss: float
    dead_codes_replaced: int


def _kmeans_init(model: RQVAE, z: torch.Tensor, seed: int) -> None:
    from ace_core.ids.kmeans import KMeansConfig, fit_kmeans

    residual = z.clone()
    with torch.no_grad():
        for level in range(model.config.levels):
            km = fit_kmeans(
                residual.numpy(), KMeansConfig(k=model.codebook_size, niter=20, seed=seed + level)
            )
            cb = torch.from_numpy(km.centroids)
            if cb.shape[0] < model.codebook_size:  # fewer distinct points than codes
                extra = residual[
                    torch.randint(0, residual.shape[0], (model.codebook_size - cb.shape[0],))
                ]
                cb = torch.cat([cb, extra])
            model.codebooks[level].copy_(cb)
            residual = residual - cb[torch.from_numpy(km.assignment)]


INITS = ("kmeans", "faiss_rq")


def train_faiss_rq(x: np.ndarray, levels: int, K: int, seed: int | None = None):
    """A trained ``faiss.ResidualQuantizer`` with ``levels`` codebooks of ``K`` codes (its
    default training: progressive-dimension k-means with codebook refinement); ``seed``
    None keeps faiss' default clustering seed."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    rq = faiss.ResidualQuantizer(x.shape[1], levels, int(math.log2(K)))
    if x.shape[0] < x.shape[1]:  # progressive-dim training needs a PCA: n >= d
        rq.train_type = faiss.ResidualQuantizer.Train_default
    rq.cp.min_points_per_centroid = 1  # small corpora are expected: no stderr warning
    if seed is not None:
        rq.cp.seed = seed
    rq.train(x)
    return rq


def _faiss_rq_init(model: RQVAE, z: torch.Tensor, seed: int) -> None:
    import faiss

    L, K = model.config.levels, model.codebook_size
    rq = train_faiss_rq(z.numpy(), L, K, seed)
    cb = faiss.vector_to_array(rq.codebooks).reshape(L, K, model.dim)
    with torch.no_grad():
        model.codebooks.copy_(torch.from_numpy(cb))


def _replace_dead_codes(
    model: RQVAE, usage: torch.Tensor, z: torch.Tensor, gen: torch.Generator
) -> int:
    """Codes used < min_uses times take the residual of random training points at that level."""
    replaced = 0
    with torch.no_grad():
        residual = z
        for level in range(model.config.levels):
            cb = model.codebooks[level]
            dead = (usage[level] < model.config.dead_code_min_uses).nonzero().flatten()
            idx = torch.cdist(residual, cb).argmin(dim=1)
            if len(dead):
                pick = torch.randint(0, residual.shape[0], (len(dead),), generator=gen)
                cb[dead] = residual[pick]
                replaced += len(dead)
            residual = residual - cb[idx]
    return replaced


def train_rqvae(
    x: np.ndarray, config: RQVAEConfig = RQVAEConfig(), *, device: str | torch.device = "cpu"
) -> RQVAEFit:
    """Fit an RQ-VAE on float32 (n, d) vectors; deterministic given ``config.seed``."""
    if config.init not in INITS:
        raise AceInputError(f"unknown RQ-VAE init {config.init!r} (one of {', '.join(INITS)})")
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    n, d = x_t.shape
    gen = torch.Generator().manual_seed(config.seed)
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, int(round(n * config.val_fraction))) if n > 1 else 0
    val, train = x_t[perm[:n_val]], x_t[perm[n_val:]] if n > 1 else x_t
    k = effective_codebook_size(n, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = RQVAE(d, config, k)
        init = _faiss_rq_init if config.init == "faiss_rq" else _kmeans_init
        init(model, train[: max(config.batch_size, config.init_points_per_code * k)], config.seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    best = (_eval_loss(model, val if n_val else train, device), copy.deepcopy(model.state_dict()))
    best_epoch, epoch, replaced = 0, 0, 0
    for epoch in range(1, config.max_epochs + 1):
        usage = _train_epoch(model, opt, train, config, gen, device)
        replaced += _replace_dead_codes(model, usage, _latent(model, train, device).cpu(), gen)
        loss = _eval_loss(model, val if n_val else train, device)
        if loss < best[0] - 1e-7:
            best, best_epoch = (loss, copy.deepcopy(model.state_dict())), epoch
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best[1])
    model.eval().cpu()
    logger.info(
        "rq-vae: %d epochs, best held-out loss %.5f at epoch %d, %d dead codes replaced",
        epoch,
        best[0],
        best_epoch,
        replaced,
    )
    return RQVAEFit(model, epoch, best[0], replaced)


def _train_epoch(model, opt, train, config, gen, device) -> torch.Tensor:
    model.train()
    usage = torch.zeros(config.levels, model.codebook_size)
    order = torch.randperm(train.shape[0], generator=gen)
    for start in range(0, train.shape[0], config.batch_size):
        xb = train[order[start : start + config.batch_size]].to(device)
        recon, codes, loss_q = model(xb)
        # codebook gradient through the decoder as well: quantised latent, not straight-through
        zq = sum(model.codebooks[lv][codes[:, lv]] for lv in range(config.levels))
        loss = F.mse_loss(recon, xb) + loss_q + 0.5 * F.mse_loss(model.decoder(zq), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for lv in range(config.levels):
            usage[lv] += torch.bincount(codes[:, lv].cpu(), minlength=model.codebook_size)
    return usage


@torch.no_grad()
def _latent(model, x, device) -> torch.Tensor:
    return torch.cat([model.encoder(x[i : i + 8192].to(device)) for i in range(0, len(x), 8192)])


@torch.no_grad()
def _eval_loss(model, x, device) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(x), 8192):
        xb = x[i : i + 8192].to(device)
        codes, _ = model.quantize(model.encoder(xb))
        total += F.mse_loss(model.decode_codes(codes), xb, reduction="sum").item()
    return total / max(1, x.numel())


@torch.no_grad()
def rq_encode(model: RQVAE, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Codes int64 (n, L) of float32 (n, d) vectors."""
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    out = [model.quantize(model.encoder(x_t[i : i + batch]))[0] for i in range(0, len(x_t), batch)]
    return (
        torch.cat(out).numpy().astype(np.int64)
        if out
        else np.zeros((0, model.config.levels), np.int64)
    )


@torch.no_grad()
def rq_decode(model: RQVAE, codes: np.ndarray) -> np.ndarray:
    """Reconstruction float32 (n, d) of codes int64 (n, L)."""
    return model.decode_codes(torch.from_numpy(np.asarray(codes, dtype=np.int64))).numpy()
