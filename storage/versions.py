"""Building, validating, diffing and describing versions.

A version is assembled in a staging folder (items, embeddings, captions, semantic IDs,
codebooks, retriever, eval), validated, given a manifest, and published by ``Store.publish``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ace_core.generate import Trie
from ace_core.media import CaptionEntry, sha256_file
from ace_core.semantic_ids import SemanticIDs
from storage.codebooks import read_semantic_ids
from storage.tables import read_embeddings, write_table_atomic

CAPTIONS_SCHEMA = pa.schema(
    [("item_id", pa.string()), ("caption", pa.string()), ("split", pa.string())]
)


class ValidationError(Exception):
    """A staged version that must not be published."""


# ----------------------------------------------------------------------------- staging


def stage_tables(
    staged: Path, items: pa.Table, embedding_parts: Sequence[str], captions: dict[str, CaptionEntry]
) -> None:
    """items.parquet, embeddings/part-*.parquet (hard links when possible), captions.parquet.

    Only ok items keep captions; failed items are recorded in items.parquet alone.
    """
    write_table_atomic(items.sort_by("item_id"), staged / "items.parquet")
    (staged / "embeddings").mkdir(parents=True, exist_ok=True)
    n = 0
    for src in embedding_parts:
        if pq.ParquetFile(src).metadata.num_rows == 0:
            continue
        dst = staged / "embeddings" / f"part-{n:05d}.parquet"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        n += 1
    ok = set(items.filter(pa.compute.equal(items["status"], "ok"))["item_id"].to_pylist())
    rows = [(i, c, e.split) for i, e in sorted(captions.items()) if i in ok for c in e.captions]
    table = pa.Table.from_pydict(
        {
            "item_id": [r[0] for r in rows],
            "caption": [r[1] for r in rows],
            "split": [r[2] for r in rows],
        },
        schema=CAPTIONS_SCHEMA,
    )
    write_table_atomic(table, staged / "captions.parquet")


def known_item_ids(folder: Path) -> set[str]:
    """Every item_id a version recorded, ok or failed."""
    return set(pq.read_table(folder / "items.parquet", columns=["item_id"])["item_id"].to_pylist())


def read_captions(folder: Path) -> dict[str, CaptionEntry]:
    out: dict[str, CaptionEntry] = {}
    for r in pq.read_table(folder / "captions.parquet").to_pylist():
        out.setdefault(r["item_id"], CaptionEntry([], r["split"])).captions.append(r["caption"])
    return out


def version_embeddings(folder: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Embeddings of a version sorted by item_id."""
    ids, mods, x = read_embeddings(sorted((folder / "embeddings").glob("part-*.parquet")))
    order = np.argsort(ids, kind="stable")
    return [ids[i] for i in order], [mods[i] for i in order], x[order]


# ----------------------------------------------------------------------------- validation


def validate_version(folder: Path) -> dict:
    """Row counts, unique IDs, every ID resolvable in the trie, eval present."""
    items = pq.read_table(folder / "items.parquet")
    ok_ids = sorted(items.filter(pa.compute.equal(items["status"], "ok"))["item_id"].to_pylist())
    emb_ids, _, emb = version_embeddings(folder)
    if emb_ids != ok_ids:
        raise ValidationError(f"embeddings hold {len(emb_ids)} rows for {len(ok_ids)} ok items")
    if len(set(items["item_id"].to_pylist())) != items.num_rows:
        raise ValidationError("items.parquet has duplicate item_ids")
    sids = read_semantic_ids(folder / "semantic_ids.parquet")
    if sids.item_ids != ok_ids:
        raise ValidationError(f"semantic_ids has {len(sids.item_ids)} rows for {len(ok_ids)} items")
    if len(set(sids.sids)) != len(sids.sids):
        raise ValidationError("semantic IDs are not unique")
    trie = Trie(sids.tokens())
    unresolved = [i for i, row in enumerate(sids.tokens()) if trie.item(row) != i]
    if unresolved:
        raise ValidationError(f"{len(unresolved)} IDs do not resolve in the trie")
    if not (folder / "eval.json").exists():
        raise ValidationError("eval.json missing")
    if not (folder / "retriever" / "weights.safetensors").exists():
        raise ValidationError("retriever weights missing")
    return {"items": items.num_rows, "ok": len(ok_ids), "ids": len(sids.sids)}


# ----------------------------------------------------------------------------- audit


def id_diff(old: SemanticIDs | None, new: SemanticIDs, *, detail: bool = False) -> dict:
    """added / removed / changed / unchanged item counts between two ID sets."""
    before = dict(zip(old.item_ids, old.sids)) if old is not None else {}
    after = dict(zip(new.item_ids, new.sids))
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    common = set(after) & set(before)
    changed = sorted(i for i in common if before[i] != after[i])
    out = {
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "unchanged": len(common) - len(changed),
    }
    if detail:
        out["changed_items"] = [{"item_id": i, "from": before[i], "to": after[i]} for i in changed]
        out["added_items"] = [{"item_id": i, "sid": after[i]} for i in added]
        out["removed_items"] = [{"item_id": i, "sid": before[i]} for i in removed]
    return out


# ----------------------------------------------------------------------------- manifest


def code_version() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from ace_core import __version__

    return __version__


def input_set_hash(item_ids: Sequence[str]) -> str:
    h = hashlib.sha256()
    for i in sorted(item_ids):
        h.update(i.encode())
    return h.hexdigest()


def file_list(folder: Path) -> list[dict]:
    out = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name == "manifest.json":
            continue
        entry = {
            "path": p.relative_to(folder).as_posix(),
            "sha256": sha256_file(p),
            "bytes": p.stat().st_size,
        }
        if p.suffix == ".parquet":
            entry["rows"] = pq.ParquetFile(p).metadata.num_rows
        out.append(entry)
    return out


def counts(folder: Path, ids_report: dict) -> dict:
    items = pq.read_table(folder / "items.parquet", columns=["modality", "status"]).to_pylist()
    by: dict[str, dict[str, int]] = {}
    for r in items:
        by.setdefault(r["modality"], {}).setdefault(r["status"], 0)
        by[r["modality"]][r["status"]] += 1
    return {
        "items": len(items),
        "ok": sum(r["status"] == "ok" for r in items),
        "failed": sum(r["status"] == "failed" for r in items),
        "by_modality": by,
        "collisions": int(
            round(ids_report.get("collision_rate", 0) * ids_report.get("n_items", 0))
        ),
        "utilization": ids_report.get("utilization"),
    }


def write_manifest(folder: Path, fields: dict) -> dict:
    manifest = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_version": code_version(),
        **fields,
        "files": file_list(folder),
    }
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    tmp.replace(folder / "manifest.json")
    return manifest
