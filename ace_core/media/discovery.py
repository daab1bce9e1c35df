"""Corpus discovery: walk a directory, decide each file's modality from its content, hash it,
and read the optional ``captions.jsonl`` (captions.py).

Modality is decided by magic bytes first; container formats that can hold either audio or video
(MP4/MOV/Matroska/WebM/Ogg/AVI) are probed with PyAV for a video stream. The file extension is
only a last resort for formats with no magic number (TGA).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ace_core.media.captions import CAPTIONS_FILE, CaptionEntry, parse_captions, printable
from ace_core.media.walk import is_store, walk

logger = logging.getLogger(__name__)

Modality = Literal["image", "audio", "video"]  # a name of ace_core.media.modalities.KINDS


@dataclass(frozen=True)
class MediaFile:
    """One discovered media file."""

    path: str  # path relative to the corpus root, '/' separated
    abs_path: str  # absolute path on disk
    item_id: str  # sha256 of the file's bytes (hex)
    modality: Modality  # decided from the content
    bytes: int  # file size
    source_id: str | None = None  # the store source it was found under (path is relative to it)


@dataclass
class Discovery:
    """Result of walking a corpus."""

    files: list[MediaFile]  # one per distinct item_id (first path in sorted order)
    duplicates: dict[str, list[str]]  # item_id -> other paths with the same bytes
    skipped: list[tuple[str, str]]  # (path, reason) for non-media files
    captions: dict[str, CaptionEntry]  # item_id -> captions (merged over duplicate paths)
    caption_errors: list[str] = field(default_factory=list)  # "captions.jsonl:LINE: reason"


class FileChangedError(OSError):
    """A file that grew while it was hashed (still being written, or endless)."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, reading no more than the size it had when opened (a file
    that keeps growing raises FileChangedError instead of being read forever)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = os.fstat(f.fileno()).st_size
        while left > 0 and (block := f.read(min(chunk, left))):
            h.update(block)
            left -= len(block)
        if f.read(1):
            raise FileChangedError(f"{path}: changed while it was read (still being written?)")
    return h.hexdigest()


_IMAGE_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"\xff\xd8\xff"),  # JPEG, MPO
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"BM"),
    (0, b"II*\x00"),
    (0, b"MM\x00*"),
    (0, b"qoif"),
    (0, b"\x8aMNG"),
    (0, b"SIMPLE  ="),  # FITS
    (128, b"DICM"),
    (0, b"\x00\x00\x01\x00"),  # ICO
)
_AUDIO_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"fLaC"),
    (0, b"ID3"),
    (0, b"#!AMR"),
)
_CONTAINER_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\x1aE\xdf\xa3"),  # Matroska / WebM
    (0, b"OggS"),
    (0, b"FLV"),
)
_IMAGE_EXT = {".tga", ".icb", ".vda", ".vst"}  # formats with no magic number


def _netpbm(head: bytes) -> bool:
    return len(head) > 2 and head[0:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace()


def sniff_modality(path: str | os.PathLike, head: bytes | None = None) -> Modality | None:
    """Modality of a file from its content, or None when it is not media we handle."""
    if head is None:
        with open(path, "rb") as f:
            head = f.read(512)
    if not head:
        return None
    for off, magic in _IMAGE_MAGIC:
        if head[off : off + len(magic)] == magic:
            return "image"
    if _netpbm(head):
        return "image"
    if head[:4] == b"RIFF":
        kind = head[8:12]
        if kind == b"WEBP":
            return "image"
        if kind == b"WAVE":
            return "audio"
        if kind == b"AVI ":
            return _probe_container(path) or "video"
        return None
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
            return "image"
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return "audio"
        return _probe_container(path)
    for off, magic in _AUDIO_MAGIC:
        if head[off : off + len(magic)] == magic:
            return "audio"
    if len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "audio"  # MPEG audio frame sync (MP3 without ID3) or ADTS AAC
    for off, magic in _CONTAINER_MAGIC:
        if head[off : off + len(magic)] == magic:
            return _probe_container(path)
    if Path(path).suffix.lower() in _IMAGE_EXT:
        return "image"
    return _identify(path)


_NOT_MEDIA_FORMATS = {"tty", "lavfi", "ffmetadata", "srt", "ass", "webvtt", "data", "bin"}


def _identify(path: str | os.PathLike) -> Modality | None:
    """A file with no magic number we know: an image if Pillow opens and decodes it (PCX,
    XPM, every format Pillow reads), else audio or video if PyAV opens a real container and
    decodes a frame of it (MPEG-1/2 program streams, anything FFmpeg reads); else None."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # confirm with the decoder: formats Pillow only identifies fail here
            return "image"
    except Exception:  # noqa: BLE001 - not an image Pillow can read
        pass
    return _decodable_stream(path)


def _decodable_stream(path: str | os.PathLike) -> Modality | None:
    import av

    try:
        with av.open(str(path)) as c:
            if c.format.name in _NOT_MEDIA_FORMATS:
                return None
            streams = [s for s in c.streams if s.type in ("video", "audio")]
            video = [s for s in streams if s.type == "video" and not _cover_art(s)]
            stream = video[0] if video else next((s for s in streams if s.type == "audio"), None)
            if stream is None:
                return None
            for _ in c.decode(stream):  # one decoded frame confirms it
                return "video" if stream.type == "video" else "audio"
    except Exception:  # noqa: BLE001 - anything PyAV cannot open or decode is not media
        return None
    return None


def _cover_art(stream) -> bool:
    import av

    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _probe_container(path: str | os.PathLike) -> Modality | None:
    """Open a container with PyAV: video if it has a video stream that is not cover art."""
    import av  # local: PyAV is heavy and only needed for containers

    try:
        with av.open(str(path)) as c:
            has_video = any(
                s.type == "video" and not (s.disposition & av.stream.Disposition.attached_pic)
                for s in c.streams
            )
            has_audio = any(s.type == "audio" for s in c.streams)
    except Exception as e:  # noqa: BLE001 - any probe failure means "unreadable container"
        logger.debug("probe failed for %s: %s", path, e)
        return "video"  # a container we cannot open: let the video decoder record the reason
    if has_video:
        return "video"
    if has_audio:
        return "audio"
    return None


def discover(root: str | os.PathLike) -> Discovery:
    """Walk ``root`` recursively and return its media files, skipped files and captions."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {root}")
    real_root = root.resolve()
    files: dict[str, MediaFile] = {}
    duplicates: dict[str, list[str]] = {}
    skipped: list[tuple[str, str]] = []
    path_to_id: dict[str, str] = {}
    if is_store(root):
        raise FileNotFoundError(f"{root} is an ACE store, not a corpus folder")
    for p in walk(root, skipped):
        rel = p.relative_to(root).as_posix()
        if rel == CAPTIONS_FILE:
            continue
        problem = _unusable(p, rel, real_root)
        if problem:
            skipped.append((printable(rel), problem))
            continue
        try:
            modality = sniff_modality(p)
        except OSError as e:
            skipped.append((rel, f"unreadable: {e.strerror or e}"))
            continue
        if modality is None:
            skipped.append((rel, "not a supported media file"))
            continue
        try:
            item_id = sha256_file(p)
        except OSError as e:
            skipped.append((rel, f"unreadable: {e.strerror or e}"))
            continue
        path_to_id[rel] = item_id
        if item_id in files:
            duplicates.setdefault(item_id, []).append(rel)
            continue
        files[item_id] = MediaFile(rel, str(real_root / rel), item_id, modality, p.stat().st_size)
    captions, errors = parse_captions(root / CAPTIONS_FILE, path_to_id)
    for err in errors:
        logger.warning("%s", err)
    ordered = sorted(files.values(), key=lambda f: f.path)
    return Discovery(ordered, duplicates, skipped, captions, errors)


def _unusable(p: Path, rel: str, real_root: Path) -> str | None:
    """Why a walked path cannot be an item (None when it can)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8 (rename it)"
    if p.is_symlink():
        target = p.resolve()
        if real_root not in target.parents:
            return "symbolic link to a file outside the corpus (not followed)"
    if not p.is_file():
        return "not a regular file"
    return None


def with_source(found: Discovery, source_id: str, prefix: str = "") -> Discovery:
    """The same discovery with every file tagged ``source_id`` and its path prefixed (a
    sub-folder of that source: ``prefix`` is its path relative to the source root)."""

    def rebase(path: str) -> str:
        return f"{prefix.strip('/')}/{path}" if prefix.strip("/") else path

    return Discovery(
        files=[replace(f, path=rebase(f.path), source_id=source_id) for f in found.files],
        duplicates={k: [rebase(p) for p in v] for k, v in found.duplicates.items()},
        skipped=[(rebase(p), why) for p, why in found.skipped],
        captions=found.captions,
        caption_errors=[f"{source_id}: {e}" for e in found.caption_errors],
    )


def merge_discoveries(parts: Iterable[Discovery]) -> Discovery:
    """One discovery over several sources: the first file with given bytes wins (sources in
    the order given), later ones are duplicates ("source_id:path"); captions are merged."""
    files: dict[str, MediaFile] = {}
    merged = Discovery([], {}, [], {}, [])
    for part in parts:
        part_source = part.files[0].source_id if part.files else None
        for f in part.files:
            if f.item_id in files:
                merged.duplicates.setdefault(f.item_id, []).append(f"{f.source_id}:{f.path}")
            else:
                files[f.item_id] = f
        for item_id, paths in part.duplicates.items():
            merged.duplicates.setdefault(item_id, []).extend(f"{part_source}:{p}" for p in paths)
        merged.skipped.extend(part.skipped)
        merged.caption_errors.extend(part.caption_errors)
        for item_id, entry in part.captions.items():
            have = merged.captions.setdefault(item_id, CaptionEntry([], entry.split))
            have.captions.extend(c for c in entry.captions if c not in have.captions)
    merged.files = sorted(files.values(), key=lambda f: (f.source_id or "", f.path))
    return merged
