"""Discovery records: what a corpus walk found, saved as JSON under staging/.

The file is named by the hash of its content, so an unchanged corpus gives the same path
(and therefore the same inputs to every cached task downstream).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ace_core.media.discovery import CaptionEntry, Discovery, MediaFile
from ace_index.storage.store.sources import Source


def save_discovery(found: Discovery, folder: Path, sources: Sequence[Source] = ()) -> Path:
    """The record of a walk, with the sources it walked (a source planned by this run is
    registered only when its version publishes)."""
    payload = json.dumps(
        {
            "sources": [asdict(s) for s in sources],
            "files": [asdict(f) for f in found.files],
            "duplicates": found.duplicates,
            "skipped": found.skipped,
            "captions": {k: asdict(v) for k, v in sorted(found.captions.items())},
            "caption_errors": found.caption_errors,
        },
        sort_keys=True,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"discovery-{hashlib.sha256(payload.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(payload)
        tmp.replace(path)
    return path


def load_discovery(path: str | Path) -> Discovery:
    d = json.loads(Path(path).read_text())
    return Discovery(
        files=[MediaFile(**f) for f in d["files"]],
        duplicates=d["duplicates"],
        skipped=[tuple(s) for s in d["skipped"]],
        captions={k: CaptionEntry(**v) for k, v in d["captions"].items()},
        caption_errors=d["caption_errors"],
    )


def discovery_sources(path: str | Path) -> list[Source]:
    """The sources a discovery record walked."""
    return [Source(**s) for s in json.loads(Path(path).read_text()).get("sources", [])]
