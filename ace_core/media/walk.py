"""Walking a corpus folder: files in sorted order, without opening what is not media to
index: hidden names, ACE stores (any store, not only the one being built: their versions and
thumbnails are not a corpus) and special file systems (/proc, /sys, /dev: endless or blocking
files)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

SPECIAL_FS = frozenset(
    "proc sysfs devtmpfs devpts cgroup cgroup2 securityfs debugfs tracefs pstore bpf configfs "
    "fusectl mqueue hugetlbfs binfmt_misc autofs efivarfs selinuxfs rpc_pipefs nsfs".split()
)


def special_mounts() -> dict[str, str]:
    """Mount points of special (kernel) file systems -> their type (from /proc/self/mounts;
    the usual ones where it cannot be read)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            rows = [line.split()[1:3] for line in f.read(1 << 20).splitlines()]
    except OSError:
        return {"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs"}
    return {
        where.replace("\\040", " "): fs
        for where, fs in (r for r in rows if len(r) == 2)
        if fs in SPECIAL_FS
    }


def special_mount(path: str | os.PathLike) -> str | None:
    """The special file system ``path`` lies on (None for ordinary ones)."""
    text = str(path)
    for where, fs in special_mounts().items():
        if text == where or text.startswith(where.rstrip("/") + "/"):
            return fs
    return None


def is_store(folder: str | os.PathLike) -> bool:
    """An ACE store (any, not only the one being built): versions/ beside LATEST,
    sources.json or staging/."""
    p = Path(folder)
    return (p / "versions").is_dir() and any(
        (p / name).exists() for name in ("LATEST", "sources.json", "staging")
    )


def walk(root: Path, skipped: list[tuple[str, str]]) -> Iterable[Path]:
    """Files under ``root`` in sorted order; hidden names, stores and special file systems
    are left out without being opened (the folders go to ``skipped``)."""
    special = special_mounts()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        kept = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            why = _folder_left_out(os.path.join(dirpath, d), special)
            if why:
                skipped.append((Path(dirpath, d).relative_to(root).as_posix() + "/", why))
            else:
                kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            yield Path(dirpath) / name


def _folder_left_out(path: str, special: dict[str, str]) -> str | None:
    real = os.path.realpath(path)
    if real in special:
        return f"special file system ({special[real]}), not indexed"
    if is_store(path):
        return "an ACE store (its versions and thumbnails are not media to index)"
    return None
