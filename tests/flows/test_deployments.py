"""prefect.yaml deployed to a real Prefect server (started on loopback by this test): the
publish event of an ingest triggers the retrain deployment, which a process worker runs to
completion on the store the event names; a full rebuild's event triggers nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ace_index.flows.cli import main
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` on loopback with its own home; yields the env to reach it."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
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
        f"'prefect.resource.id': f'ace.version.{{s.key}}.v000009', 'ace.store': {str(store)!r},"
        f" 'ace.operation': {operation!r}}})\n"
    )
    _run(env, "python", "-c", "from ace_index.tasks import _env\n" + code)


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


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_an_ingest_event_runs_the_retrain_deployment_on_its_store(
    prefect_harness, server, tmp_path
):
    from ace_core.synth import CorpusCounts, write_sample_corpus

    write_sample_corpus(tmp_path / "c", seed=4, counts=CorpusCounts(images=4, audio=0, videos=0))
    (tmp_path / "fast.json").write_text(json.dumps(FAST))
    store = tmp_path / "store"
    argv = [
        "index",
        str(tmp_path / "c"),
        "--store",
        str(store),
        "--config",
        str(tmp_path / "fast.json"),
    ]
    assert main(argv) == 0
    _run(server, "prefect", "work-pool", "create", "ace-process", "--type", "process")
    _run(server, "prefect", "--no-prompt", "deploy", "--all")

    _emit(server, store, "full_rebuild")  # must not trigger the retrain
    _emit(server, store, "incremental_append")
    runs = _wait(lambda: _flow_runs(server, "train-after-ingest"), 90,
                 "the automation never created a flow run")  # fmt: skip
    assert [r["parameters"] for r in runs] == [{"store": str(store)}]  # rendered, one run

    _run(server, "prefect", "worker", "start", "--pool", "ace-process", "--run-once",
         timeout=400)  # fmt: skip
    runs = _flow_runs(server, "train-after-ingest")
    assert [r["state"] for r in runs] == ["COMPLETED"]
    s = Store(store)
    assert s.versions() == ["v000001", "v000002"]
    assert s.manifest()["operation"] == "retrain"

    # the nightly deployment (only `store` given) re-indexes with the store's own encoders:
    # ace-tiny-vit with random weights here, never the defaults (not cached on this machine)
    _run(server, "prefect", "deployment", "run", "index-corpus/nightly-reindex",
         "--param", f"store={store}")  # fmt: skip
    _run(server, "prefect", "worker", "start", "--pool", "ace-process", "--run-once",
         timeout=400)  # fmt: skip
    nightly = [
        r for r in _flow_runs(server, "nightly-reindex") if r["parameters"]["store"] == str(store)
    ]
    assert [r["state"] for r in nightly] == ["COMPLETED"], nightly  # (the cron's own runs wait)
    latest = s.manifest()
    assert latest["config"]["embed"]["image"]["model"] == "ace-tiny-vit"
    assert latest["id_diff"]["changed"] == 0  # the nightly run moved no ID
