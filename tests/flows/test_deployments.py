"""prefect.yaml deployed to a real Prefect server (started on loopback by this test): the
publish event of an ingest triggers the retrain deployment, which a process worker runs to
completion on the store the event names; a full rebuild's event triggers nothing. The store's
default comes from the Prefect Variable ace_store; runs are named and tagged after their store
(a CLI build reports to the configured server too); a second run of a build deployment waits
for its slot (issue 43)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

from ace_index.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAST = {
    "train": {"epochs": 2, "eval_every": 2, "dense": {"epochs": 3}},
    "ids": {"rqvae": {"max_epochs": 2}},
    "embed": {
        "image": {"model": "ace-tiny-vit", "pretrained": "random"},
        "audio": {"checkpoint": "random"},
        "shard_size": 16,
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` on loopback with its own home; yields the env to reach it."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait(lambda: _healthy(port), 120, "the Prefect server never became healthy", home)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _wait(check, timeout: float, message: str, home: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(1)
    tail = (home / "server.log").read_text(errors="replace")[-2000:] if home else ""
    pytest.fail(f"{message}\n{tail}")


def _run(env, *argv, timeout=300) -> str:
    out = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def _emit(env, store: Path, operation: str) -> None:
    code = (
        "from prefect.events import emit_event\n"
        "from ace_index.storage.store import Store\n"
        f"s = Store({str(store)!r})\n"
        "emit_event(event='ace.version.published', resource={"
        f"'prefect.resource.id': f'ace.version.{{s.key}}.v000001', 'ace.store': {str(store)!r},"
        f" 'ace.operation': {operation!r}}}, payload={{'version': 'v000001'}})\n"
    )
    _run(env, "python", "-c", "from ace_index.tasks import _env\n" + code)


def _py(env, code: str):
    """``code`` run against the server; it prints one JSON value last."""
    prelude = (
        "import json\nfrom prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas import filters as F\n"
    )
    return json.loads(_run(env, "python", "-c", prelude + code).strip().splitlines()[-1])


def _store_runs(env, store: Path) -> list[dict]:
    """The server's flow runs tagged with the store's key, oldest first."""
    tag = f"store:{Store(store).key}"
    return _py(env, (
        "with get_client(sync_client=True) as c:\n"
        "    runs = c.read_flow_runs(flow_run_filter=F.FlowRunFilter("
        f"tags=F.FlowRunFilterTags(all_=[{tag!r}])))\n"
        "    flows = {f.id: f.name for f in c.read_flows()}\n"
        "    runs = sorted(runs, key=lambda r: r.created)\n"
        "    print(json.dumps([{'flow': flows[r.flow_id], 'name': r.name, 'tags': r.tags,"
        " 'state': r.state_type.value} for r in runs]))\n"
    ))  # fmt: skip


@pytest.fixture(scope="module")
def deployed(server, tmp_path_factory):
    """prefect.yaml deployed with the Variable ace_store set first; yields that store."""
    default_store = tmp_path_factory.mktemp("default") / "store"
    _run(server, "prefect", "variable", "set", "ace_store", str(default_store))
    _run(server, "prefect", "work-pool", "create", "ace-process", "--type", "process")
    _run(server, "prefect", "--no-prompt", "deploy", "--all")
    return default_store


def _flow_runs(env, deployment: str) -> list[dict]:
    code = (
        "import json\nfrom prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName\n"
        "with get_client(sync_client=True) as c:\n"
        f"    runs = c.read_flow_runs(deployment_filter=DeploymentFilter("
        f"name=DeploymentFilterName(any_=[{deployment!r}])))\n"
        "    print(json.dumps([{'state': r.state_type.value, 'parameters': r.parameters}"
        " for r in runs]))\n"
    )
    return json.loads(_run(env, "python", "-c", code).strip().splitlines()[-1])


def _run_nightly(env, store: Path) -> list[dict]:
    """One run of the nightly deployment on ``store``, taken by a process worker; every
    nightly run of that store so far."""
    _run(env, "prefect", "deployment", "run", "index-corpus/nightly-reindex",
         "--param", f"store={store}")  # fmt: skip
    _run(env, "prefect", "worker", "start", "--pool", "ace-process", "--run-once",
         timeout=400)  # fmt: skip
    runs = _flow_runs(env, "nightly-reindex")
    return [r for r in runs if r["parameters"]["store"] == str(store)]


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_an_ingest_event_runs_the_retrain_deployment_on_its_store(server, deployed, tmp_path):
    from ace_core.synth import CorpusCounts, write_sample_corpus

    write_sample_corpus(tmp_path / "c", seed=4, counts=CorpusCounts(images=4, audio=0, videos=0))
    (tmp_path / "fast.json").write_text(json.dumps(FAST))
    store = tmp_path / "store"
    # a CLI build with PREFECT_API_URL set reports to that server (not an embedded one)
    cli = subprocess.run(
        [str(BIN / "ace"), "index", str(tmp_path / "c"), "--store", str(store), "--config",
         str(tmp_path / "fast.json")], env=server, cwd=ROOT, capture_output=True, text=True,
        timeout=400,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert f"Prefect API: {server['PREFECT_API_URL']} (configured)" in cli.stderr
    [built] = _store_runs(server, store)
    assert built["flow"] == "index-corpus" and built["state"] == "COMPLETED"
    assert built["name"].startswith("index-store-20")
    assert {"ace", "op:index", f"store:{Store(store).key}"} <= set(built["tags"])

    _emit(server, store, "full_rebuild")  # must not trigger the retrain
    _emit(server, store, "incremental_append")
    runs = _wait(lambda: _flow_runs(server, "train-after-ingest"), 90,
                 "the automation never created a flow run")  # fmt: skip
    rendered = {"store": str(store), "version": "v000001"}  # the event's store and version
    assert [r["parameters"] for r in runs] == [rendered]  # rendered, one run

    _run(server, "prefect", "worker", "start", "--pool", "ace-process", "--run-once",
         timeout=400)  # fmt: skip
    runs = _flow_runs(server, "train-after-ingest")
    assert [r["state"] for r in runs] == ["COMPLETED"]
    s = Store(store)
    assert s.versions() == ["v000001", "v000002"]
    assert s.manifest()["operation"] == "retrain"

    # the nightly deployment (only `store` given) re-indexes with the store's own encoders:
    # ace-tiny-vit with random weights here, never the defaults (not cached on this machine)
    nightly = _run_nightly(server, store)
    assert [r["state"] for r in nightly] == ["COMPLETED"], nightly  # (the cron's own runs wait)
    latest = s.manifest()
    assert latest["config"]["embed"]["image"]["model"] == "ace-tiny-vit"
    assert latest["id_diff"]["changed"] == 0  # the nightly run moved no ID

    # the store's runs on the server, found by its tag: named after operation and store
    runs = _store_runs(server, store)
    assert [(r["flow"], r["name"].split("-20")[0]) for r in runs] == [
        ("index-corpus", "index-store"), ("train-retriever", "retrain-store"),
        ("index-corpus", "index-store"),
    ]  # fmt: skip
    assert "op:retrain" in runs[1]["tags"] and "op:index" in runs[2]["tags"]
    assert not _store_runs(server, tmp_path / "elsewhere")  # another store: none of them
    # the ingest's trigger and the nightly published one version between them
    assert s.versions() == ["v000001", "v000002"]

    # a rollback survives the nightly deployment: its run publishes nothing, LATEST stays
    rollback = subprocess.run(
        [str(BIN / "ace"), "rollback", "v000001", "--store", str(store), "--reason", "bad model"],
        env=server, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rollback.returncode == 0, rollback.stderr[-2000:]
    nightly = _run_nightly(server, store)
    assert [r["state"] for r in nightly] == ["COMPLETED", "COMPLETED"], nightly
    assert s.latest() == "v000001" and s.versions() == ["v000001", "v000002"]
    assert s.pin()["version"] == "v000001"


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_a_second_run_of_a_build_deployment_waits_for_its_slot(server, deployed):
    """The store's default is the Variable's value; one run of a build deployment at a time:
    the second is Scheduled as AwaitingConcurrencySlot (no worker process), as a worker
    would find it when it proposes Pending for it."""
    got = _py(server, (
        "from prefect.states import Pending, Cancelled\n"
        "with get_client(sync_client=True) as c:\n"
        "    d = c.read_deployment_by_name('ingest-batch/ingest')\n"
        "    a, b = (c.create_flow_run_from_deployment(d.id) for _ in range(2))\n"
        "    first = c.set_flow_run_state(a.id, Pending())\n"
        "    second = c.set_flow_run_state(b.id, Pending())\n"
        "    after = c.read_flow_run(b.id).state\n"
        "    for r in (a, b):\n"
        "        c.set_flow_run_state(r.id, Cancelled(), force=True)\n"
        "        c.delete_flow_run(r.id)\n"
        "    print(json.dumps({'store': d.parameters['store'], 'tags': d.tags,"
        " 'limit': d.global_concurrency_limit.limit,"
        " 'strategy': d.concurrency_options.collision_strategy.value,"
        " 'first': first.status.value, 'second': second.status.value,"
        " 'after': [after.type.value, after.name]}))\n"
    ))  # fmt: skip
    assert got["store"] == str(deployed)  # {{ prefect.variables.ace_store }}, rendered
    assert {"ace", "op:ingest"} <= set(got["tags"])
    assert (got["limit"], got["strategy"]) == (1, "ENQUEUE")
    assert got["first"] == "ACCEPT" and got["second"] == "REJECT"
    assert got["after"] == ["SCHEDULED", "AwaitingConcurrencySlot"]
