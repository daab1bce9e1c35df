"""captions.jsonl: one JSON object per line, ``{"path", "captions": [...], "split"?}``.

Read defensively: every bad line (malformed or deeply nested JSON, wrong types, text that is
not Unicode, an unknown path, an over-long line) is reported with its line number and skipped;
a captions.jsonl that is not a regular file (a FIFO, a link to /dev/zero) is not read at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CAPTIONS_FILE = "captions.jsonl"
SPLITS = ("train", "val", "test")


@dataclass
class CaptionEntry:
    """Captions of one item, from captions.jsonl."""

    captions: list[str]
    split: str | None = None  # "train" | "val" | "test" when the corpus keeps official splits


def printable(text: str) -> str:
    """Text safe to print and store (undecodable file-name bytes shown as \\xNN escapes)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def parse_captions(
    path: Path, path_to_id: dict[str, str]
) -> tuple[dict[str, CaptionEntry], list[str]]:
    """Parse captions.jsonl; malformed lines and unknown paths are reported, never fatal."""
    out: dict[str, CaptionEntry] = {}
    errors: list[str] = []
    if not (path.exists() or path.is_symlink()):
        return out, errors
    problem = _not_a_captions_file(path)
    if problem:
        return out, [f"{CAPTIONS_FILE}: {problem}; captions ignored"]
    for lineno, raw in _lines(path):
        where = f"{CAPTIONS_FILE}:{lineno}"
        if raw is None:
            errors.append(f"{where}: line longer than {MAX_CAPTION_LINE} bytes")
            continue
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            errors.append(f"{where}: not valid UTF-8")
            continue
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: malformed JSON ({e.msg})")
            continue
        except RecursionError:
            errors.append(f"{where}: JSON nested too deeply")
            continue
        reason = _caption_problem(obj)
        if reason:
            errors.append(f"{where}: {reason}")
            continue
        item_id = path_to_id.get(obj["path"].removeprefix("./"))
        if item_id is None:
            errors.append(f"{where}: unknown path {printable(obj['path'])!r} (no such media file)")
            continue
        caps = [c.strip() for c in obj["captions"] if c.strip()]
        entry = out.setdefault(item_id, CaptionEntry([], obj.get("split")))
        entry.captions.extend(c for c in caps if c not in entry.captions)
    return out, errors


MAX_CAPTION_LINE = 1 << 20  # bytes per captions.jsonl line
MAX_CAPTIONS_FILE = 4 << 30  # bytes: a larger captions.jsonl is refused


def _not_a_captions_file(path: Path) -> str | None:
    """Why captions.jsonl cannot be read safely (a FIFO would block forever, a device such as
    /dev/zero never ends)."""
    import stat

    try:
        st = path.stat()
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > MAX_CAPTIONS_FILE:
        return f"larger than {MAX_CAPTIONS_FILE >> 30} GiB"
    return None


def _lines(path: Path) -> Iterable[tuple[int, bytes | None]]:
    """(line number, bytes) of a file, bounded: an over-long line gives None (and is
    skipped to its end)."""
    with open(path, "rb") as f:
        lineno = 0
        while chunk := f.readline(MAX_CAPTION_LINE + 1):
            lineno += 1
            if len(chunk) > MAX_CAPTION_LINE and not chunk.endswith(b"\n"):
                while (rest := f.readline(MAX_CAPTION_LINE)) and not rest.endswith(b"\n"):
                    pass
                yield lineno, None
                continue
            yield lineno, chunk


def _caption_problem(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return "expected a JSON object"
    if not isinstance(obj.get("path"), str) or not obj["path"]:
        return "missing or non-string 'path'"
    caps = obj.get("captions")
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        return "'captions' must be a list of strings"
    try:
        obj["path"].encode("utf-8")
        for c in caps:
            c.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not valid Unicode (a lone surrogate escape)"
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        return f"'split' must be one of {', '.join(SPLITS)}, got {split!r}"
    return None
