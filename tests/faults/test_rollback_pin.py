"""A rollback that sticks (issue 43): `ace rollback` pins the version it serves; a flow run no
person started (``explicit=False``: the nightly schedule, the retrain trigger) publishes
nothing while the pin holds, and says so in one line; `ace rollback --unpin` and an explicit
`ace index` / `ace ingest` lift it; a killed rollback or publish never leaves a pin naming a
version LATEST does not name."""

from __future__ import annotations

import inspect
import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from fault_helpers import ace, one_line_error

from ace_index.flows.cli import EXIT_DAMAGED
from ace_index.storage.store import Store
from ace_index.storage.store.layout import VersionLayout
from ace_index.storage.store.pin import pin_file, read_pin

ROOT = Path(__file__).resolve().parents[2]


class Killed(BaseException):
    """The process dies here."""


def _publish_copy(store: Path) -> str:
    """Publish a copy of LATEST as the next version (what a nightly re-index would publish)."""
    s = Store(store)
    staged = s.staging_dir / "versions" / "copy"
    shutil.copytree(s.version_dir(s.latest()), staged)
    with s.lock():
        version = s.next_version()
        s.publish(VersionLayout(staged), version)
    return version


def _rolled_back(capsys, store: Path, *argv: str) -> dict:
    code, out, err = ace(capsys, "rollback", *argv, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def _pin_names_latest_or_nothing(store: Path) -> None:
    """The invariant of every kill point: no PIN, or one naming the version LATEST names."""
    pin = read_pin(store)
    assert pin is None or pin["version"] == Store(store).latest(), (pin, Store(store).latest())


def test_a_rollback_pins_the_served_version_and_versions_lists_it(store, capsys):
    v2 = _publish_copy(store)
    r = _rolled_back(capsys, store, "--reason", "bad model")
    assert (r["latest"], r["previous"]) == ("v000001", v2)
    pin = r["pinned"]
    assert (pin["version"], pin["reason"], pin["previous"]) == ("v000001", "bad model", v2)
    assert pin["at"].endswith("Z") and read_pin(store) == pin  # recorded in the store
    code, out, _ = ace(capsys, "versions", "--store", str(store), "--json")
    assert code == 0
    assert {row["version"]: row["pinned"] for row in json.loads(out)} == {
        "v000001": True,
        v2: False,
    }
    code, out, _ = ace(capsys, "versions", "--store", str(store))
    assert "v000001 pinned" in out and "bad model" in out and "ace rollback --unpin" in out
    code, _, err = ace(capsys, "rollback", "--store", str(store))  # nothing older: refused
    assert code == 2 and read_pin(store) == pin, err


def test_a_run_no_person_started_publishes_nothing_while_pinned(store, built, caplog):
    from ace_index.flows.index import index_corpus, ingest_batch, train_retriever

    v2 = _publish_copy(store)
    assert _rollback_in_process(store) == "v000001"
    before = sorted(p.name for p in store.iterdir()), Store(store).history()
    runs = {
        "ace index": lambda: index_corpus(store=str(store)),  # the nightly's parameters
        "ace ingest": lambda: ingest_batch(str(built / "corpus"), str(store)),
        "retrain": lambda: train_retriever(str(store)),  # the trigger after an ingest
    }
    for what, run in runs.items():
        caplog.clear()
        with caplog.at_level(logging.INFO):
            result = run()
        assert result["pinned"] is True and result["published"] is False, what
        assert result["version"] == "v000001" == Store(store).latest()
        said = [r.getMessage() for r in caplog.records if getattr(r, "ace_stage", False)]
        assert len(said) == 1 and said[0].startswith("pinned: v000001 stays served"), said
        assert f"this {what} run" in said[0] and "ace rollback --unpin" in said[0]
    assert Store(store).versions() == ["v000001", v2]  # nothing published
    assert (sorted(p.name for p in store.iterdir()), Store(store).history()) == before


def _rollback_in_process(store: Path) -> str:
    from ace_index.storage.store.upkeep import rollback

    return rollback(str(store))["latest"]


def test_deployments_leave_explicit_false_so_they_honour_the_pin():
    """The deployments (schedule, trigger) never pass ``explicit``; the flows default it to
    False, and only the CLI passes True (checked without a Prefect server: the deployment
    run itself is covered by calling the flows as a deployment would)."""
    import ace_index.flows.index as index_flows

    for deployment in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]:
        assert "explicit" not in (deployment.get("parameters") or {}), deployment["name"]
        for trigger in deployment.get("triggers") or []:
            assert "explicit" not in (trigger.get("parameters") or {}), deployment["name"]
    for name in ("index_corpus", "ingest_batch", "train_retriever"):
        fn = getattr(index_flows, name).fn
        assert inspect.signature(fn).parameters["explicit"].default is False, name
    cli = (ROOT / "flows" / "cli" / "build_commands.py").read_text()
    assert cli.count("explicit=True") == 2  # `ace index` and `ace ingest`


def test_an_explicit_cli_index_lifts_the_pin_and_says_so(store, capsys):
    _publish_copy(store)
    _rolled_back(capsys, store)
    code, out, err = ace(capsys, "index", "--store", str(store), "--json")
    assert code == 0, err[-2000:]
    r = json.loads(out)
    assert r["pin_lifted"]["version"] == "v000001" and r["version"] == Store(store).latest()
    assert [line for line in err.splitlines() if "lifted the pin on v000001" in line]
    assert read_pin(store) is None


def test_an_explicit_ingest_with_nothing_new_lifts_the_pin_too(store, built, capsys):
    _publish_copy(store)
    _rolled_back(capsys, store)
    code, out, err = ace(capsys, "ingest", str(built / "corpus"), "--store", str(store), "--json")
    assert code == 0, err[-2000:]
    r = json.loads(out)
    assert r["published"] is False and r["pin_lifted"]["version"] == "v000001"
    assert read_pin(store) is None and Store(store).latest() == "v000001"


def test_a_publish_lifts_the_pin_before_latest_moves(store, capsys):
    _publish_copy(store)
    _rolled_back(capsys, store)
    v3 = _publish_copy(store)  # what an explicit run's publish does
    assert Store(store).latest() == v3 and read_pin(store) is None


def test_ace_rollback_unpin(store, capsys):
    _publish_copy(store)
    _rolled_back(capsys, store)
    code, out, err = ace(capsys, "rollback", "--unpin", "--store", str(store))
    assert code == 0, err
    assert out.strip() == (
        "lifted the pin on v000001: scheduled and triggered runs publish again "
        "(LATEST stays v000001)"
    )
    assert read_pin(store) is None and Store(store).latest() == "v000001"
    code, out, _ = ace(capsys, "versions", "--store", str(store), "--json")
    assert not any(row["pinned"] for row in json.loads(out))
    code, out, _ = ace(capsys, "rollback", "--unpin", "--store", str(store), "--json")
    assert code == 0 and json.loads(out) == {"unpinned": None, "latest": "v000001"}
    code, _, err = ace(capsys, "rollback", "v000001", "--unpin", "--store", str(store))
    assert code == 2
    one_line_error(err, "--unpin takes no version")


@pytest.mark.parametrize("damage", ["not json", "a folder"])
def test_an_unreadable_pin_is_a_damaged_store_that_unpin_repairs(store, capsys, damage):
    if damage == "a folder":
        pin_file(store).mkdir()
    else:
        pin_file(store).write_text(damage)
    code, out, err = ace(capsys, "versions", "--store", str(store))
    assert code == EXIT_DAMAGED and out == ""
    one_line_error(err, "damaged store", "PIN", "ace rollback --unpin")
    assert ace(capsys, "rollback", "--unpin", "--store", str(store))[0] == 0
    assert ace(capsys, "versions", "--store", str(store))[0] == 0


# ---------------------------------------------------------------------- kill points


def _dies_after(monkeypatch, module, name: str) -> None:
    real = getattr(module, name)

    def killed(*args, **kwargs):
        real(*args, **kwargs)
        raise Killed(f"killed after {name}")

    monkeypatch.setattr(module, name, killed)


@pytest.mark.parametrize(
    "point", ["upkeep.remove_pin", "store.append_history", "Store._write_latest", "write_pin"]
)
def test_a_killed_rollback_never_leaves_a_pin_naming_another_version(
    store, capsys, monkeypatch, point
):
    from ace_index.storage.store import store as store_module
    from ace_index.storage.store import upkeep

    v2 = _publish_copy(store)
    _publish_copy(store)
    _rolled_back(capsys, store, v2)  # pinned at v2; now a rollback to v1 dies midway
    where = {
        "upkeep.remove_pin": (upkeep, "remove_pin"),
        "store.append_history": (store_module, "append_history"),
        "Store._write_latest": (Store, "_write_latest"),
        "write_pin": (upkeep, "write_pin"),
    }[point]
    _dies_after(monkeypatch, *where)
    with pytest.raises(Killed):
        ace(capsys, "rollback", "v000001", "--store", str(store))
    monkeypatch.undo()
    _pin_names_latest_or_nothing(store)
    assert _rolled_back(capsys, store, "v000001")["pinned"]["version"] == "v000001"


@pytest.mark.parametrize("point", ["remove_pin", "move_latest"])
def test_a_killed_publish_never_leaves_a_pin_naming_another_version(
    store, capsys, monkeypatch, point
):
    from ace_index.storage.store import store as store_module

    _publish_copy(store)
    _rolled_back(capsys, store)
    if point == "remove_pin":
        _dies_after(monkeypatch, store_module, "remove_pin")
    else:
        _dies_after(monkeypatch, Store, "move_latest")
    with pytest.raises(Killed):
        _publish_copy(store)
    monkeypatch.undo()
    _pin_names_latest_or_nothing(store)
