"""The typed schema of every configuration: each field's type from its dataclass, and the
bounds below, checked before any work (a bad epoch count fails in a second, not after the
embedding). One rule per field name: the names mean the same thing in every component."""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from ace_core.errors import AceInputError

MAX_INT = 2**31 - 1
ZERO_OK = {"seed", "dead_code_min_uses", "max_index_repeats", "patience"}
RANGES: dict[str, tuple[float, float]] = {  # inclusive bounds beyond the defaults
    "levels": (1, 8),
    "codebook_size": (2, 65_536),
    "k": (1, 10_000_000),
    "n_heads": (1, 64),
    "n_layers": (1, 64),
    "d_model": (8, 8192),
    "epochs": (1, 100_000),
    "max_epochs": (1, 100_000),
    "max_windows": (1, 64),  # decoding keeps at most 64 windows of a long clip
    "n_frames": (1, 1000),
    "max_pixels": (1, 2**34),
    "timeout_s": (0.001, 86_400),
    "lr": (1e-12, 10),
    "lr_scale": (1e-6, 100),
    "dropout": (0, 0.99),
    "val_fraction": (0.001, 0.9),
}
CHOICES = {
    "mode": ("ace", "no_coarse", "hkmeans", "random"),
    "init": ("kmeans", "faiss_rq"),
    "updates": ("all", "new-items", "new-offsets"),  # ace_core.retrieval.fine_tune.UPDATES
    "text_precision": ("auto", "float32", "bfloat16"),  # ace_core.retrieval.text_encoder
    "precision": ("auto", "float32", "bfloat16"),  # train.dense (ace_core.retrieval.dense)
}


class ConfigError(AceInputError):
    """A configuration value of the wrong type or outside its bounds."""


def check_config(cfg: object, where: str = "") -> None:
    """Raise ConfigError naming the first bad field (e.g. ``train.epochs``)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, name = getattr(cfg, f.name), f"{where}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            if not dataclasses.is_dataclass(value):
                raise ConfigError(f"{name} must be a table of settings, got {value!r:.60}")
            check_config(value, f"{name}.")
            continue
        if not _has_type(value, hints[f.name]):
            raise ConfigError(f"{name} must be {_type_name(hints[f.name])}, got {value!r:.60}")
        _check_value(f.name, name, value)
    _check_together(cfg, where)


def _has_type(value: object, hint: object) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: object) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _check_value(field: str, name: str, value: object) -> None:
    if value is None or isinstance(value, (bool, tuple)):
        return
    if isinstance(value, str):
        if field in CHOICES and value not in CHOICES[field]:
            raise ConfigError(f"{name} must be one of {', '.join(CHOICES[field])}, got {value!r}")
        return
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    lo, hi = RANGES.get(field, (0 if field in ZERO_OK or isinstance(value, float) else 1, MAX_INT))
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")


def _check_together(cfg: object, where: str) -> None:
    size = getattr(cfg, "codebook_size", None)
    if type(cfg).__name__ == "RQVAEConfig" and size & (size - 1):
        raise ConfigError(f"{where}codebook_size must be a power of two, got {size}")
    heads, width = getattr(cfg, "n_heads", None), getattr(cfg, "d_model", None)
    if heads and width and width % heads:
        raise ConfigError(f"{where}d_model ({width}) must be a multiple of n_heads ({heads})")
