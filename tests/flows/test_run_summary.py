"""What an operator sees of a build (issue 43): the files it added, removed and failed, by
name, in the CLI's summary, `ace audit` and the publish's markdown artifact; an audit of a
pruned version says so in one line."""

from __future__ import annotations

import json
import shutil

from ace_index.flows.cli import main
from ace_index.flows.cli.present import audit_report, publish_report
from ace_index.storage.build.audit import run_files
from ace_index.storage.store import Store
from ace_index.tasks.run_summary import summary_markdown


def ace(capsys, *argv) -> tuple[int, str, str]:
    code = main([*argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_ingest_names_its_added_and_failed_files(store, tmp_path, capsys):
    from ace_core.synth import CorpusCounts, write_sample_corpus

    extra = tmp_path / "extra"
    write_sample_corpus(extra, seed=9, counts=CorpusCounts(images=2, audio=0, videos=0))
    (extra / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    code, out, err = ace(capsys, "ingest", str(extra), "--store", str(store))
    assert code == 0, err[-2000:]
    files = run_files(str(store), "v000002")
    assert len(files["added"]) == 2 and files["removed"] == []
    assert [f["file"].split(":")[1] for f in files["failed"]] == ["broken.png"]
    for name in files["added"]:
        assert f"  added: {name}" in out, out
    assert "  failed: " in out and "broken.png" in out
    code, out, _ = ace(capsys, "audit", "--store", str(store))
    assert code == 0 and all(f"  added: {name}" in out for name in files["added"]), out
    code, out, _ = ace(capsys, "audit", "--store", str(store), "--json")
    assert sorted(x["file"] for x in json.loads(out)["added_items"]) == files["added"]


def test_the_summaries_cap_each_list():
    files = {
        "added": [f"s1:a{i:02d}.png" for i in range(25)],
        "removed": [],
        "failed": [{"file": "s1:bad.png", "error": "broken file"}],
    }
    m = {"version": "v000002", "parent_version": "v000001",
         "id_diff": {"added": 25, "removed": 0, "changed": 0, "unchanged": 3}}  # fmt: skip
    md = summary_markdown(m, files)
    assert "## Added files (25)" in md and "- `s1:a19.png`" in md and "a20" not in md
    assert "- ... and 5 more" in md and "## Removed files: none" in md
    assert "- `s1:bad.png`: broken file" in md
    added = [{"item_id": str(i), "file": n} for i, n in enumerate(files["added"])]
    d = {"from": "v000001", "to": "v000002", "added": 25, "removed": 1, "changed": 0,
         "unchanged": 3, "changed_items": [], "removed_items": [{"item_id": "x", "file": "s1:z"}],
         "added_items": added}  # fmt: skip
    text = audit_report(d)
    assert "  added: s1:a19.png" in text and "a20" not in text and "  removed: s1:z" in text
    assert "  ... and 5 more added files (--json lists all)" in text


def test_the_build_summary_lists_removed_files_of_a_reindex():
    r = {
        "version": "v000002", "operation": "full_rebuild", "parent_version": "v000001",
        "seconds": 1.0, "items": {"items": 2, "ok": 2, "failed": 0},
        "ids": {"k": 2, "levels": 2, "codebook_size": 4, "collision_rate": 0},
        "id_diff": {"added": 0, "removed": 1, "changed": 0, "unchanged": 2},
        "removed_items": [{"source_id": "s1", "path": "gone.png"}], "eval": {},
    }  # fmt: skip
    assert "  removed: s1:gone.png" in publish_report(r)  # the vanished files, without "files"
    r["files"] = {"added": ["s1:new.png"], "removed": ["s1:gone.png"], "failed": []}
    text = publish_report(r)
    assert "  added: s1:new.png" in text and "  removed: s1:gone.png" in text


def test_an_audit_of_a_pruned_version_says_so(store, capsys):
    s = Store(store)
    staged = s.staging_dir / "versions" / "copy"
    shutil.copytree(s.version_dir(s.latest()), staged)
    from ace_index.storage.store.layout import VersionLayout

    with s.lock():
        s.publish(VersionLayout(staged), "v000002")
    assert ace(capsys, "prune", "--keep", "1", "--store", str(store))[0] == 0
    for argv in (["--to", "v000001"], ["--from", "v000001"], ["--to", "1"]):
        code, out, err = ace(capsys, "audit", "--store", str(store), *argv)
        assert code == 2 and out == "", err
        assert err.strip().splitlines() == [f"ace: error: v000001 was pruned{_kept()}"], err
    code, _, err = ace(capsys, "audit", "--store", str(store), "--to", "v000009")
    assert code == 2 and "unknown version 'v000009'" in err


def _kept() -> str:
    return " (`ace prune` deleted it; versions kept: v000002)"
