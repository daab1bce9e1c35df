"""Operations: stage lines off a terminal and in Prefect's run logs, progress artifacts keyed
by store, the command's own wall time, one-line user errors from inside flows, ablations
saved and reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import fast_config

from ace_index.flows.cli import main
from ace_index.storage.store import Store

FAST = fast_config(3, 3, 3, 2)
STAGES = (
    "discovered 6 media files",
    "embedding shard-",
    "IDs fitted: 6 items",
    "steps planned (",
    "training: epoch 3 (step",
    "validation MRR@10",
    "training ended at step",
    "dense baseline: ",
    "dense baseline trained: ",
    "published v000001",
)


def _ace(env, *argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ace_index.flows.cli", *argv], env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def piped(prefect_harness, tmp_path_factory):
    """`ace index` run as a pipe would run it (stderr not a terminal), on this session's API."""
    from prefect.settings import get_current_settings

    from ace_core.synth import CorpusCounts, write_sample_corpus

    root = tmp_path_factory.mktemp("ops")
    write_sample_corpus(root / "c", seed=2, counts=CorpusCounts(images=4, audio=2, videos=0))
    (root / "fast.json").write_text(json.dumps(FAST))
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    started = time.perf_counter()
    out = _ace(env, "index", str(root / "c"), "--store", str(root / "s"), "--config",
               str(root / "fast.json"), "--json")  # fmt: skip
    wall = time.perf_counter() - started
    assert out.returncode == 0, out.stderr[-3000:]
    return root, env, out, wall


def test_stage_lines_show_off_a_terminal(piped):
    _, _, out, _ = piped
    for line in STAGES:
        assert line in out.stderr, (line, out.stderr[-3000:])
    assert "Traceback" not in out.stderr and "Beginning flow run" not in out.stderr


def test_seconds_are_the_commands_wall_time(piped):
    _, _, out, wall = piped
    seconds = json.loads(out.stdout)["seconds"]
    assert wall - 15 <= seconds <= wall  # python start-up and imports come before main()


def test_stage_lines_and_progress_artifacts_reach_prefect(piped):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        LogFilter,
        LogFilterFlowRunId,
    )

    root, _, _, _ = piped
    key = Store(root / "s").key
    with get_client(sync_client=True) as c:
        runs = [
            r for r in c.read_flow_runs(limit=200)
            if r.parameters.get("store") == str(root / "s")
        ]  # fmt: skip
        top = [r for r in runs if r.parent_task_run_id is None]  # index-corpus; embed-stage
        assert len(top) == 1 and top[0].state_type.value == "COMPLETED" and len(runs) == 2
        logs = c.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id for r in runs])))
        text = "\n".join(log.message for log in logs)
        for line in STAGES:
            assert line in text, line
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=key)))
        by_key = {a.key: a for a in arts}
        assert {f"ace-{key}-embedding", f"ace-{key}-training", f"ace-{key}-v000001"} <= set(by_key)
        for part in ("training", "dense"):
            assert by_key[f"ace-{key}-{part}"].type == "progress"
            assert float(by_key[f"ace-{key}-{part}"].data) == 100.0
        summary = by_key[f"ace-{key}-v000001-diff"].data  # the run summary names the files
        assert "## Added files (6)" in summary and "images/img_0000.png`" in summary, summary
        assert "## Removed files: none" in summary and "## Failed files: none" in summary


def test_two_stores_do_not_share_artifact_keys(tmp_path):
    a, b = Store(tmp_path / "a" / "store"), Store(tmp_path / "b" / "store")
    assert a.key != b.key and a.key.startswith("store-")


def test_a_user_error_inside_a_flow_is_one_line(piped, tmp_path):
    root, env, _, _ = piped
    out = _ace(env, "ingest", str(root / "c"), "--store", str(tmp_path / "empty"))
    assert out.returncode == 2, out.stderr[-2000:]
    api, *error = out.stderr.strip().splitlines()  # the API the run reports to, then the error
    assert api == (
        f"Prefect API: {env['PREFECT_API_URL']} (configured): this run and its artifacts are "
        "kept there"
    )
    assert error == [
        f"ace: error: no published version in {tmp_path / 'empty'} (run `ace index` first)"
    ]


def test_ablations_are_saved_and_reused(piped, capsys, monkeypatch):
    from ace_core.retrieval import ablations

    root, _, _, _ = piped
    assert main(["eval", "--store", str(root / "s"), "--ablations", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["ablations"]
    assert set(first) == {"no_coarse", "hkmeans", "no_fusion", "random_ids"}
    assert Store(root / "s").ablations_file("v000001").exists()

    def retrained(*a, **k):
        raise AssertionError("ablations trained again")

    monkeypatch.setattr(ablations, "run_ablations", retrained)
    assert main(["eval", "--store", str(root / "s"), "--ablations", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ablations"] == first
