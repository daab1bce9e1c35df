"""A re-index refused because files vanished (issue 43): one line naming the first files
and the exact command that allows it; inside a deployment's run, an ``ace.reindex.refused``
event an Automation can alert on."""

import pytest
from prefect import flow

from ace_index.storage.build.staging import Removals
from ace_index.storage.store import StoreError
from ace_index.tasks import build, removals

GONE = Removals(
    items=[{"item_id": f"i{n}", "source_id": "photos", "path": f"img_{n}.png",
            "location": f"/p/img_{n}.png"} for n in range(7)],
    missing_sources=[],
)  # fmt: skip


@flow
def reindex(store: str, max_remove: int | None) -> None:
    build.check_removals(GONE, max_remove)


@pytest.mark.parametrize("in_deployment", [False, True])
def test_a_refusal_names_the_files_and_how_to_allow_it(
    prefect_harness, tmp_path, monkeypatch, in_deployment
):
    events = []
    monkeypatch.setattr(removals, "emit_event", lambda **kw: events.append(kw))
    monkeypatch.setattr(removals, "deployment_id", lambda: "d-1" if in_deployment else None)
    store = str(tmp_path / "store")
    with pytest.raises(StoreError) as refused:
        reindex(store, 0)
    line = str(refused.value)
    assert "\n" not in line and line.startswith("re-index would remove 7 indexed item(s)")
    assert "(photos:img_0.png, photos:img_1.png, " in line and " and 2 more)" in line
    assert f"allow it: `ace index --store {store} --max-remove 7`" in line
    assert "parameter max_remove: 7" in line and "--allow-remove" in line
    if not in_deployment:
        assert events == []
        return
    [event] = events
    assert event["event"] == "ace.reindex.refused"
    assert event["resource"]["prefect.resource.id"].startswith("ace.store.store-")
    p = event["payload"]
    assert (p["would_remove"], p["max_remove"], len(p["files"])) == (7, 0, 7)
    assert p["allow"] == f"ace index --store {store} --max-remove 7"


def test_within_the_limit_nothing_is_refused_nor_emitted(prefect_harness, tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(removals, "emit_event", lambda **kw: events.append(kw))
    monkeypatch.setattr(removals, "deployment_id", lambda: "d-1")
    reindex(str(tmp_path / "store"), 7)
    reindex(str(tmp_path / "store"), None)
    assert events == []
