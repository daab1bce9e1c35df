"""What a publish needs of the disk: durable writes (fsync of files and folders) and whether
the process that staged a folder still runs."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

OWNER_FILE = ".owner"  # in a staged folder: "host pid" of the process that builds it


def mark_owner(folder: Path) -> None:
    (folder / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")


def remove_unowned(folder: Path) -> list[str]:
    """Remove the staged folders under ``folder`` whose builder process is gone (killed
    runs); their names."""
    removed = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not owner_alive(path / OWNER_FILE):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def owner_alive(owner: Path) -> bool:
    """Whether the process that staged a folder still runs (on this host)."""
    try:
        host, pid = owner.read_text().split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return True  # another machine's run: not ours to judge
    try:
        number = int(pid)
    except ValueError:
        return True  # not ours to judge either
    return number != 0 and pid_alive(number)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host runs under ``pid`` (one we may not signal does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def write_durably(path: Path, text: str) -> None:
    """Replace a small file atomically and durably (temp file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
