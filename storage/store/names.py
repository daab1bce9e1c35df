"""Version names: the folder names of published versions (v000001, ...) and what a user may
type for one."""

from __future__ import annotations

import re

from ace_index.storage.store.errors import VersionNameError

VERSION_RE = re.compile(r"^v(\d{6,})\Z", re.ASCII)
_VERSION_NUMBER = re.compile(r"[0-9]{1,9}")


def version_number(version: str) -> int:
    return int(VERSION_RE.match(version).group(1))


def version_name(version: str) -> str:
    """A version folder's name from what a user typed: a number ("3") or a name ("v000003"),
    ASCII digits only (``"²".isdigit()`` is True; "١" must not mean v000001)."""
    if _VERSION_NUMBER.fullmatch(version):
        return f"v{int(version):06d}"
    if VERSION_RE.match(version):
        return version
    raise VersionNameError(
        f"a version is a number such as 3 or a name such as v000003, got {version[:40]!r}"
    )
