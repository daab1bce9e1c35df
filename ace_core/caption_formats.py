"""Standard benchmark caption files -> captions.jsonl records (official splits kept).

Formats:
- ``karpathy``: Flickr30K / MS-COCO Karpathy-split JSON (dataset_flickr30k.json,
  dataset_coco.json); "restval" counts as train;
- ``clotho``: Clotho CSV (file_name, caption_1..caption_5); one file per split;
- ``audiocaps``: AudioCaps CSV (audiocap_id, youtube_id, start_time, caption); one per split;
- ``msrvtt``: MSR-VTT JSON (videos with split, sentences with video_id); "validate" is val.
Each record: {"path", "captions", "split"}.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from ace_core.errors import AceInputError

FORMATS = ("karpathy", "clotho", "audiocaps", "msrvtt")
_SPLIT_ALIASES = {
    "train": "train",
    "restval": "train",
    "val": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "evaluation": "test",
}


def _split(name: str | None, where: str) -> str:
    if name is None:
        raise AceInputError(f"{where}: a split is needed (give SRC=train|val|test)")
    s = _SPLIT_ALIASES.get(name.lower())
    if s is None:
        raise AceInputError(f"{where}: unknown split {name!r}")
    return s


def convert(
    fmt: str, sources: Iterable[tuple[str, str | None]], *, path_template: str | None = None
) -> list[dict]:
    """Records for ``sources`` = [(file, split or None)], merged by path, sorted by path."""
    if fmt not in FORMATS:
        raise AceInputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    merged: dict[str, dict] = {}
    for src, split in sources:
        try:
            records = _READERS[fmt](Path(src), split, path_template)
        except (KeyError, TypeError, json.JSONDecodeError, csv.Error) as e:
            raise AceInputError(f"{src}: not a valid {fmt} file ({type(e).__name__}: {e})") from e
        for r in records:
            m = merged.setdefault(
                r["path"], {"path": r["path"], "captions": [], "split": r["split"]}
            )
            m["captions"].extend(c for c in r["captions"] if c not in m["captions"])
    return [merged[p] for p in sorted(merged)]


def _karpathy(src: Path, split: str | None, _tpl) -> list[dict]:
    data = json.loads(src.read_text())
    out = []
    for im in data["images"]:
        path = f"{im['filepath']}/{im['filename']}" if im.get("filepath") else im["filename"]
        caps = [s["raw"].strip() for s in im["sentences"] if s.get("raw", "").strip()]
        out.append({"path": path, "captions": caps, "split": _split(im["split"], str(src))})
    return out


def _clotho(src: Path, split: str | None, _tpl) -> list[dict]:
    s = _split(split, str(src))
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        caps = [r[k].strip() for k in sorted(r) if k.startswith("caption") and r[k].strip()]
        out.append({"path": r["file_name"], "captions": caps, "split": s})
    return out


def _audiocaps(src: Path, split: str | None, tpl: str | None) -> list[dict]:
    s = _split(split, str(src))
    tpl = tpl or "{youtube_id}_{start_time}.wav"
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({"path": tpl.format(**r), "captions": [r["caption"].strip()], "split": s})
    return out


def _msrvtt(src: Path, split: str | None, tpl: str | None) -> list[dict]:
    data = json.loads(src.read_text())
    tpl = tpl or "{video_id}.mp4"
    caps: dict[str, list[str]] = {}
    for sent in data["sentences"]:
        caps.setdefault(sent["video_id"], []).append(sent["caption"].strip())
    return [
        {
            "path": tpl.format(video_id=v["video_id"]),
            "captions": caps.get(v["video_id"], []),
            "split": _split(split or v.get("split"), str(src)),
        }
        for v in data["videos"]
    ]


_READERS = {"karpathy": _karpathy, "clotho": _clotho, "audiocaps": _audiocaps, "msrvtt": _msrvtt}
