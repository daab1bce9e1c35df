"""A damaged or missing LATEST loses nothing and is repaired by `ace rollback`; the manifest
is covered by a checksum; `verify --all` lists every damaged file; `ace prune` is the only
command that deletes a version and never the served one."""

from __future__ import annotations

import json
import shutil

import pytest
from fault_helpers import ace, one_line_error

from ace_index.flows.cli import EXIT_DAMAGED
from ace_index.storage.store import Store


def _second_version(store) -> str:
    """A second published version (a copy of the first, published as v000002)."""
    from ace_index.storage.store.layout import VersionLayout

    s = Store(store)
    staged = s.staging_dir / "versions" / "copy"
    shutil.copytree(s.version_dir(s.latest()), staged)
    with s.lock():
        s.publish(VersionLayout(staged), "v000002")
    return "v000002"


@pytest.mark.parametrize("latest", ["missing", "empty"])
def test_a_lost_latest_deletes_nothing_and_rollback_repairs_it(store, built, capsys, latest):
    s = Store(store)
    v2 = _second_version(store)
    (store / "LATEST").unlink()
    if latest == "empty":
        (store / "LATEST").write_text("")
    for argv in (["versions"], ["query", "a red circle"], ["ingest", str(built / "corpus")]):
        code, out, err = ace(capsys, *argv, "--store", str(store))
        assert code == EXIT_DAMAGED and out == "", argv
        one_line_error(err, "damaged store", "LATEST", "ace rollback")
    assert s.version_folders() == ["v000001", v2]  # nothing deleted
    code, out, err = ace(capsys, "rollback", "--store", str(store), "--json")
    assert code == 0, err
    assert json.loads(out)["latest"] == v2 and s.latest() == v2
    assert s.history()[-1]["operation"] == "rollback"


def test_rollback_skips_a_version_that_does_not_verify(store, capsys):
    s = Store(store)
    _second_version(store)
    s.version("v000002").embedding_parts()[0].unlink()
    (store / "LATEST").unlink()
    code, out, err = ace(capsys, "rollback", "--store", str(store), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["latest"] == "v000001" and [x["version"] for x in r["skipped"]] == ["v000002"]


def test_rollback_serves_an_older_version_and_keeps_the_newer_one(store, capsys):
    s = Store(store)
    v2 = _second_version(store)
    code, out, _ = ace(capsys, "rollback", "--store", str(store), "--json")
    r = json.loads(out)
    assert code == 0 and r.pop("pinned")["version"] == "v000001"  # tests/faults/test_rollback_pin
    assert r == {"latest": "v000001", "previous": v2, "skipped": []}
    assert s.latest() == "v000001" and s.versions() == ["v000001", v2]  # v2 still listed
    assert s.next_version() == "v000003"
    code, out, _ = ace(capsys, "audit", "--store", str(store), "--json")  # what ID holders saw
    audit = json.loads(out)
    assert code == 0 and (audit["from"], audit["to"]) == (v2, "v000001")
    assert audit["why"].startswith(f"LATEST rolled back from {v2} to v000001 at ")
    assert [m["operation"] for m in audit["moves"]] == ["publish", "publish", "rollback"]
    code, out, _ = ace(capsys, "audit", "--store", str(store))
    assert f"rollback at {audit['moves'][-1]['at']}: {v2} -> v000001" in out
    code, _, err = ace(capsys, "rollback", v2, "--store", str(store))
    assert code == 0 and s.latest() == v2


def test_an_edited_manifest_fails_verification_and_is_not_served(store, capsys):
    m = Store(store).version().manifest
    text = m.read_text()
    m.write_text(text.replace('"location": "', '"location": "/elsewhere'))
    code, out, err = ace(capsys, "query", "a red circle", "--store", str(store))
    assert code == EXIT_DAMAGED and out == ""
    one_line_error(err, "damaged store", "manifest.json", "sha256")
    code, out, err = ace(capsys, "verify", "--all", "--store", str(store), "--json")
    assert code == EXIT_DAMAGED and json.loads(out)[0]["ok"] is False


def test_verify_all_lists_every_damaged_file(store, capsys):
    s = Store(store)
    _second_version(store)
    for v in s.versions():
        s.version(v).eval.write_text("{}")  # one damaged file in each version
    (s.version("v000002").items).write_bytes(b"not parquet")
    code, out, err = ace(capsys, "verify", "--all", "--store", str(store), "--json")
    reports = json.loads(out)
    assert code == EXIT_DAMAGED and [len(r["damaged"]) for r in reports] == [1, 2]
    one_line_error(err, "v000001, v000002", "ace rollback")


def test_prune_keeps_the_served_version(store, capsys):
    s = Store(store)
    v2 = _second_version(store)
    assert ace(capsys, "rollback", "v000001", "--store", str(store))[0] == 0
    code, out, _ = ace(capsys, "prune", "--keep", "1", "--store", str(store), "--json")
    r = json.loads(out)
    assert code == 0 and r["deleted"] == [] and r["kept"] == ["v000001", v2]
    _ = ace(capsys, "rollback", v2, "--store", str(store))
    code, out, _ = ace(capsys, "prune", "--keep", "1", "--store", str(store), "--json")
    assert json.loads(out)["deleted"] == ["v000001"] and s.versions() == [v2]
