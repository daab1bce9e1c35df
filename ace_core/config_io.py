"""Config composition: frozen dataclasses to and from plain dicts, and their hash.

Each component owns its config dataclass (ImageEncoderConfig, RQVAEConfig, ...); this module
only nests them and turns them into JSON for manifests and cache keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any, TypeVar

from ace_core.errors import AceInputError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict | None) -> T:
    """Rebuild a (nested) frozen dataclass from a dict; unknown keys are an error."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise AceInputError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def config_hash(cfg: Any) -> str:
    """sha256 of the canonical JSON of a config (a dataclass, or a dict that may hold some)."""
    d = to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=to_dict).encode()).hexdigest()
