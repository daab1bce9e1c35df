"""Crash windows (issue 42): a command killed at a named point of its work, then the next
command sees a correct store. A kill is a ``Killed`` raised at that point (a BaseException:
no ``except Exception`` handles it, as none runs after a SIGKILL)."""

from __future__ import annotations

import json
import shutil

import pytest
from fault_helpers import ace

from ace_index.storage.store import Store
from ace_index.storage.store.layout import VersionLayout


class Killed(BaseException):
    """The process dies here."""


def _staged_copy(store) -> VersionLayout:
    """A staged version: a copy of LATEST's files without its manifest (valid,
    publishable)."""
    s = Store(store)
    staged = s.staging_dir / "versions" / "copy"
    shutil.copytree(s.version_dir(s.latest()), staged)
    for name in ("manifest.json", "manifest.sha256"):
        (staged / name).unlink()
    return VersionLayout(staged)


def _sources(capsys, store) -> list[str]:
    code, out, err = ace(capsys, "sources", "list", "--store", str(store), "--json")
    assert code == 0, err
    return [r["source_id"] for r in json.loads(out)]


# ----------------------------------------------------------------------------- publish


def _publish(store, extra=None) -> dict:
    """Publish a staged copy of LATEST (its parent), whose build walked the folder ``extra``
    too when given."""
    from ace_index.storage.build.publish import publish_version
    from ace_index.storage.formats.manifest import version_config
    from ace_index.storage.store.sources import Source, read_sources, write_planned_sources

    s = Store(store)
    staged = _staged_copy(store)
    if extra is not None:
        extra.mkdir(exist_ok=True)
        write_planned_sources(
            staged.root, [*read_sources(s), Source("extra", str(extra.resolve()))]
        )
    ids = s.manifest()["ids"]
    config = version_config(str(store))
    return publish_version(
        str(store),
        staged,
        operation="full_rebuild",
        expected_parent=None,
        config=config,
        ids_report=ids,
    )


def _killed_at_move_latest(monkeypatch, after: bool) -> None:
    """Kill the publish just before LATEST moves, or just after."""
    move = Store.move_latest

    def killed(self, version, operation):
        if after:
            move(self, version, operation)
        raise Killed(f"killed {'after' if after else 'before'} LATEST moved")

    monkeypatch.setattr(Store, "move_latest", killed)


def test_a_publish_killed_before_latest_moved_registers_no_source(
    store, tmp_path, capsys, monkeypatch
):
    s = Store(store)
    before = (store / "sources.json").read_text()
    _killed_at_move_latest(monkeypatch, after=False)
    with pytest.raises(Killed):
        _publish(store, tmp_path / "extra")
    monkeypatch.undo()
    assert (store / "sources.json").read_text() == before
    assert "extra" not in _sources(capsys, store)
    assert s.latest() == "v000001" and s.orphans() == ["v000002"]
    assert _publish(store, tmp_path / "extra")["version"] == "v000003"
    assert "extra" in _sources(capsys, store)


def test_a_publish_killed_after_latest_moved_has_its_source_registered_next(
    store, tmp_path, capsys, monkeypatch
):
    s = Store(store)
    _killed_at_move_latest(monkeypatch, after=True)
    with pytest.raises(Killed):
        _publish(store, tmp_path / "extra")
    monkeypatch.undo()
    assert s.latest() == "v000002" and "extra" not in (store / "sources.json").read_text()
    assert "extra" in _sources(capsys, store)  # LATEST's items come from it: it is a source
    code, _, err = ace(capsys, "sources", "remove", "extra", "--store", str(store))
    assert code == 0, err
    assert "extra" not in _sources(capsys, store)  # removed for good, not read back again
    assert not (s.version_dir("v000002") / ".sources.json").exists()


# ----------------------------------------------------------------------------- rollback


def _killed_after_first_write(monkeypatch) -> None:
    """Kill a rollback between its two writes (LATEST and history.jsonl), in either order."""
    from ace_index.storage.store import store as store_module

    def dies_after(write):
        def written(*args):
            write(*args)
            raise Killed(f"killed after {write.__name__}")

        return written

    monkeypatch.setattr(store_module, "append_history", dies_after(store_module.append_history))
    monkeypatch.setattr(Store, "_write_latest", dies_after(Store._write_latest))


def test_a_rollback_killed_between_its_writes_leaves_a_true_audit(store, capsys, monkeypatch):
    s = Store(store)
    v2 = _publish(store)["version"]
    _killed_after_first_write(monkeypatch)
    with pytest.raises(Killed):
        ace(capsys, "rollback", "--store", str(store))
    monkeypatch.undo()
    code, out, err = ace(capsys, "audit", "--store", str(store), "--json")
    assert code == 0, err
    audit = json.loads(out)
    assert (
        (audit["from"], audit["to"])
        == ("v000001", v2)
        == (s.manifest()["parent_version"], s.latest())
    )
    assert [m["operation"] for m in audit["moves"]] == ["publish", "publish"]  # none unmade
    assert ace(capsys, "rollback", "--store", str(store))[0] == 0
    code, out, err = ace(capsys, "audit", "--store", str(store), "--json")
    audit = json.loads(out)
    assert code == 0 and (audit["from"], audit["to"]) == (v2, "v000001")
    assert [m["operation"] for m in audit["moves"]] == ["publish", "publish", "rollback"]
    assert s.versions() == ["v000001", v2] and s.orphans() == []


# ----------------------------------------------------------------------------- sources.json


@pytest.mark.parametrize("where", ["/", "holds the store"])
def test_a_recorded_source_that_cannot_be_one_is_a_damaged_store(store, built, capsys, where):
    from fault_helpers import one_line_error

    from ace_index.flows.cli import EXIT_DAMAGED

    before = _sources(capsys, store)
    data = json.loads((store / "sources.json").read_text())
    location = "/" if where == "/" else str(store.parent.resolve())
    data["sources"].append({"source_id": "wide", "location": location})
    (store / "sources.json").write_text(json.dumps(data))
    for argv in (["index"], ["sources", "list"], ["index", str(built / "corpus")]):
        code, out, err = ace(capsys, *argv, "--store", str(store))
        assert code == EXIT_DAMAGED, (argv, err[-2000:])
        one_line_error(err, "damaged store", "sources.json", "wide", "ace sources remove wide")
    code, _, err = ace(capsys, "sources", "remove", "wide", "--store", str(store))
    assert code == 0, err
    assert _sources(capsys, store) == before


# ----------------------------------------------------------------------------- prune


def _killed_while_deleting(monkeypatch) -> None:
    """Kill a prune while it deletes a folder: its manifest and a few files are gone."""
    from pathlib import Path

    from ace_index.storage.store import upkeep

    def rmtree(path, *args, **kwargs):
        files = sorted(p for p in Path(path).rglob("*") if p.is_file())
        for f in [Path(path) / "manifest.json", *files[:3]]:
            f.unlink(missing_ok=True)
        raise Killed("killed while deleting")

    monkeypatch.setattr(upkeep.shutil, "rmtree", rmtree)


def test_a_prune_killed_midway_leaves_no_half_version_and_the_next_one_ends_it(
    store, capsys, monkeypatch
):
    s = Store(store)
    v2 = _publish(store)["version"]
    _killed_while_deleting(monkeypatch)
    with pytest.raises(Killed):
        ace(capsys, "prune", "--keep", "1", "--store", str(store))
    monkeypatch.undo()
    assert s.versions() == [v2] and ace(capsys, "verify", "--all", "--store", str(store))[0] == 0
    code, out, err = ace(capsys, "prune", "--keep", "1", "--store", str(store), "--json")
    assert code == 0, err
    assert json.loads(out)["deleted"] == [] and len(json.loads(out)["reclaimed"]) == 1
    assert [p.name for p in s.versions_dir.iterdir()] == [v2]


def test_prune_reclaims_a_version_folder_without_a_manifest(store, capsys):
    s = Store(store)
    v2 = _publish(store)["version"]
    for name in ("manifest.json", "manifest.sha256"):  # what an older prune left
        (s.version_dir("v000001") / name).unlink()
    code, out, err = ace(capsys, "prune", "--keep", "5", "--store", str(store), "--dry-run")
    assert code == 0 and "would delete 1 leftover folder(s): v000001" in out, err
    assert s.version_dir("v000001").is_dir()
    code, out, err = ace(capsys, "prune", "--keep", "5", "--store", str(store), "--json")
    assert code == 0 and json.loads(out)["reclaimed"] == ["v000001"], err
    assert [p.name for p in s.versions_dir.iterdir()] == [v2] and s.latest() == v2


# ----------------------------------------------------------------------------- a damaged LATEST


def test_damaged_rows_in_latest_are_a_damaged_store_not_vanished_files(store, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from fault_helpers import one_line_error

    from ace_index.flows.cli import EXIT_DAMAGED

    items = Store(store).version().items
    table = pq.read_table(items)  # zeroed item ids: still a table that reads
    zeroed = pa.array(["\0" * len(i) for i in table["item_id"].to_pylist()])
    pq.write_table(
        table.set_column(table.schema.get_field_index("item_id"), "item_id", zeroed), items
    )
    code, out, err = ace(capsys, "index", "--store", str(store))
    assert code == EXIT_DAMAGED and out == "", err[-2000:]
    last = one_line_error(err, "damaged store", "items.parquet", "sha256")
    assert "vanished" not in last and "--allow-remove" not in last


# ----------------------------------------------------------------------------- the service


def test_healthz_shows_the_store_as_it_is_now(store):
    from fastapi.testclient import TestClient

    from ace_index.flows.serve.app import create_app
    from ace_index.flows.serve.holder import VersionHolder

    holder = VersionHolder(str(store), watch_s=3600)  # refreshed here, not by its watcher
    with TestClient(create_app(str(store), token="s3cret", holder=holder)) as client:
        assert client.get("/healthz").json()["last_error"] is None
        latest = (store / "LATEST").read_text()
        (store / "LATEST").write_text("garbage\n")
        holder.refresh()
        assert "damaged store" in client.get("/healthz").json()["last_error"]
        (store / "LATEST").write_text(latest)  # repaired to the version it serves
        holder.refresh()
        health = client.get("/healthz").json()
        assert health["last_error"] is None and health["status"] == "ok"


# ----------------------------------------------------------------------------- first build


def _first_build_killed_in_training(monkeypatch, epoch: int) -> list[int]:
    """Kill training after ``epoch``'s checkpoint; every ID fit takes another RQ-VAE seed
    (a second fit of the same embeddings gives other IDs, as at 100k items). Returns the
    list of fits made."""
    from dataclasses import replace

    import ace_index.tasks.train as train
    from ace_index.storage.build import fitted_ids

    fits, fit_ids, fit = [], fitted_ids.fit_semantic_ids, train.fit_retrieval

    def fit_other_ids(ids, x, config):
        fits.append(len(fits) + 1)
        rqvae = replace(config.rqvae, seed=config.rqvae.seed + 100 * len(fits))
        return fit_ids(ids, x, replace(config, rqvae=rqvae))

    def killed(*args, progress, **kwargs):
        def epoch_done(e, row):
            progress(e, row)
            if e == epoch and not killed.once:
                killed.once = True
                raise Killed(f"killed after epoch {e}")

        return fit(*args, progress=epoch_done, **kwargs)

    killed.once = False
    monkeypatch.setattr(fitted_ids, "fit_semantic_ids", fit_other_ids)
    monkeypatch.setattr(train, "fit_retrieval", killed)
    return fits


def test_a_first_build_killed_in_training_resumes_it_with_the_same_ids(
    prefect_harness, sample_corpus, tmp_path, capsys, monkeypatch
):
    from conftest import fast_config

    config = tmp_path / "fast.json"
    config.write_text(json.dumps(fast_config(6, 3, 5, 3)))
    store = tmp_path / "store"
    argv = ["index", str(sample_corpus), "--store", str(store), "--config", str(config)]
    fits = _first_build_killed_in_training(monkeypatch, epoch=4)
    with pytest.raises(Killed):
        ace(capsys, *argv)
    assert Store(store).latest() is None
    code, _, err = ace(capsys, *argv)
    assert code == 0, err[-2000:]
    assert "training: resumed at step" in err  # its checkpoint matched: the same IDs
    assert "IDs reused from an earlier run's fit" in err
    assert fits == [1]  # the killed run's IDs, not a second fit
