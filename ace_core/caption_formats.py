"""Standard benchmark caption files -> captions.jsonl records (official splits kept).

Formats:
- ``karpathy``: Flickr30K / MS-COCO Karpathy-split JSON (dataset_flickr30k.json,
  dataset_coco.json); "restval" counts as train;
- ``coco``: the official COCO captions JSON (captions_val2017.json: ``images[].id/file_name``,
  ``annotations[].image_id/caption``); the split from SRC=SPLIT or the file name (train2017:
  train; val2017: test, as retrieval benchmarks use COCO's official val set);
- ``clotho``: Clotho CSV (file_name, caption_1..caption_5); one file per split; UTF-8, or a
  legacy encoding (detected: cp949, as upstream Clotho ships; or given with ``encoding``);
- ``audiocaps``: AudioCaps CSV (audiocap_id, youtube_id, start_time, caption); one per split;
- ``msrvtt``: MSR-VTT JSON (videos with split, sentences with video_id); "validate" is val.
Each record: {"path", "captions", "split"}.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from ace_core.bounded_read import read_bounded
from ace_core.errors import AceInputError

MAX_CAPTION_SOURCE = 1 << 30  # a caption file read whole (COCO train: about 90 MB)

FORMATS = ("karpathy", "coco", "clotho", "audiocaps", "msrvtt")
LEGACY_ENCODINGS = ("cp949",)  # tried when a CSV is not UTF-8 (cp1252 would accept any bytes)
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
    fmt: str,
    sources: Iterable[tuple[str, str | None]],
    *,
    path_template: str | None = None,
    encoding: str | None = None,
) -> list[dict]:
    """Records for ``sources`` = [(file, split or None)], merged by path, sorted by path.
    ``encoding``: of CSV files (default: UTF-8, else a detected legacy encoding)."""
    if fmt not in FORMATS:
        raise AceInputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    merged: dict[str, dict] = {}
    for src, split, *folder in sources:
        try:
            records = _READERS[fmt](Path(src), split, path_template, encoding)
            records = _in_folder(records, folder[0] if folder else None)
        except (KeyError, TypeError, AttributeError, ValueError, csv.Error) as e:
            raise AceInputError(f"{src}: not a valid {fmt} file ({type(e).__name__}: {e})") from e
        _check_collisions(fmt, src, records)
        for r in records:
            m = merged.setdefault(
                r["path"], {"path": r["path"], "captions": [], "split": r["split"]}
            )
            if m["split"] != r["split"]:
                raise AceInputError(
                    f"{src}: {r['path']!r} is in both the {m['split']} and {r['split']} splits "
                    "(two files map to one path: check --path-template)"
                )
            m["captions"].extend(c for c in r["captions"] if c not in m["captions"])
    return [merged[p] for p in sorted(merged)]


_COCO_SPLITS = (("train", "train"), ("val", "test"), ("test", "test"))


def _in_folder(records: list[dict], folder: str | None) -> list[dict]:
    """Records whose paths lie under ``folder`` of the corpus (SRC@FOLDER)."""
    if not folder:
        return records
    prefix = folder.strip("/") + "/"
    return [{**r, "path": prefix + r["path"]} for r in records]


def _check_collisions(fmt: str, src: str, records: list[dict]) -> None:
    """Two entries of one file (images, videos, rows) that map to one path mean the path
    template lost what tells them apart (AudioCaps repeats a clip's row per caption)."""
    if fmt == "audiocaps":
        return
    seen: set[str] = set()
    for r in records:
        if r["path"] in seen:
            raise AceInputError(
                f"{src}: two entries map to the path {r['path']!r}; the path template must "
                "keep them apart (check --path-template)"
            )
        seen.add(r["path"])


_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, row: dict) -> str:
    """``template`` with each ``{field}`` replaced by the row's value: plain names only (no
    attribute, index or format expressions are evaluated)."""
    rest = _FIELD.sub("", template)
    if "{" in rest or "}" in rest:
        raise AceInputError(
            f"--path-template {template!r}: only plain {{field}} names can be filled "
            f"(fields: {', '.join(sorted(map(str, row)))[:200]})"
        )

    def value(m: re.Match) -> str:
        if m.group(1) not in row:
            raise AceInputError(f"--path-template {template!r}: no field {m.group(1)!r}")
        v = row[m.group(1)]
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise AceInputError(f"field {m.group(1)!r} is not text ({type(v).__name__})")
        return str(v)

    return _FIELD.sub(value, template)


def read_text(src: Path, encoding: str | None) -> str:
    """A caption file's text: in ``encoding`` when given, else UTF-8 (BOM allowed), else the
    first legacy encoding that decodes it; a clear error naming the option otherwise."""
    raw = read_bounded(src, MAX_CAPTION_SOURCE)
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise AceInputError(f"unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as e:
            raise AceInputError(
                f"{src}: not {encoding} (byte {e.start}: {raw[e.start : e.start + 4]!r}); "
                f"try another --encoding"
            ) from None
    for enc in ("utf-8-sig", *LEGACY_ENCODINGS):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise AceInputError(
        f"{src}: neither UTF-8 nor {', '.join(LEGACY_ENCODINGS)}; give its encoding with "
        f"--encoding (e.g. --encoding latin-1)"
    )


def _csv_rows(src: Path, encoding: str | None) -> list[dict]:
    return list(csv.DictReader(io.StringIO(read_text(src, encoding), newline="")))


def _coco(src: Path, split: str | None, tpl: str | None, _enc) -> list[dict]:
    data = json.loads(read_text(src, "utf-8"))
    if split is None:
        name = src.name.lower()
        split = next((s for n, s in _COCO_SPLITS if n in name), None)
    s = _split(split, str(src))
    tpl = tpl or "{file_name}"
    caps: dict[int, list[str]] = {}
    for a in data["annotations"]:
        caps.setdefault(a["image_id"], []).append(_text(a["caption"], src))
    return [
        {"path": fill(tpl, im), "captions": [c for c in caps[im["id"]] if c], "split": s}
        for im in data["images"]
        if caps.get(im["id"])
    ]


def _text(value: object, src: Path) -> str:
    if not isinstance(value, str):
        raise AceInputError(f"{src}: a caption is not text ({type(value).__name__}: {value!r:.40})")
    return value.strip()


def _karpathy(src: Path, split: str | None, _tpl, _enc) -> list[dict]:
    data = json.loads(read_text(src, "utf-8"))
    out = []
    for im in data["images"]:
        path = f"{im['filepath']}/{im['filename']}" if im.get("filepath") else im["filename"]
        caps = [s["raw"].strip() for s in im["sentences"] if s.get("raw", "").strip()]
        out.append({"path": path, "captions": caps, "split": _split(im["split"], str(src))})
    return out


def _clotho(src: Path, split: str | None, tpl: str | None, encoding) -> list[dict]:
    s = _split(split, str(src))
    rows = _csv_rows(src, encoding)
    tpl = tpl or "{file_name}"
    out = []
    for r in rows:
        caps = [r[k].strip() for k in sorted(r) if k.startswith("caption") and (r[k] or "").strip()]
        out.append({"path": fill(tpl, r), "captions": caps, "split": s})
    return out


def _audiocaps(src: Path, split: str | None, tpl: str | None, encoding) -> list[dict]:
    s = _split(split, str(src))
    tpl = tpl or "{youtube_id}_{start_time}.wav"
    rows = _csv_rows(src, encoding)
    out = []
    for r in rows:
        out.append({"path": fill(tpl, r), "captions": [r["caption"].strip()], "split": s})
    return out


def _msrvtt(src: Path, split: str | None, tpl: str | None, _enc) -> list[dict]:
    data = json.loads(read_text(src, "utf-8"))
    tpl = tpl or "{video_id}.mp4"
    caps: dict[str, list[str]] = {}
    for sent in data["sentences"]:
        caps.setdefault(sent["video_id"], []).append(sent["caption"].strip())
    return [
        {
            "path": fill(tpl, v),
            "captions": caps.get(v["video_id"], []),
            "split": _split(split or v.get("split"), str(src)),
        }
        for v in data["videos"]
    ]


_READERS = {
    "karpathy": _karpathy,
    "coco": _coco,
    "clotho": _clotho,
    "audiocaps": _audiocaps,
    "msrvtt": _msrvtt,
}
