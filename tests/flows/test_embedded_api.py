"""The embedded Prefect API that `ace embed|index|ingest` spawn before their imports: used only
where Prefect would have started its own, answering before the first flow, stopped after."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# spawn before prefect is imported, adopt, then report what Prefect uses and the server's pid
SCRIPT = """
import sys
from ace_index.flows import embedded_api
embedded_api.spawn_if_unconfigured()
server = embedded_api._API.process
if sys.argv[1:] == ["hang"]:  # killed while the server starts
    print(server.pid, flush=True)
    import time; time.sleep(60)
import prefect.main
embedded_api.adopt_if_spawned()
from prefect.settings import get_current_settings
print(get_current_settings().api.url, server.pid, embedded_api._API.process is not None,
      flush=True)
if sys.argv[1:] == ["flow"]:
    from prefect import flow
    print(flow(lambda: 42, name="probe")(), bool(get_current_settings().ui_url), flush=True)
"""


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), **extra)
    return env


def _run(env: dict, *args: str, stderr: list | None = None) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    if stderr is not None:
        stderr.extend(proc.stderr.splitlines())
    return proc.stdout.split()


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_unconfigured_prefect_runs_flows_on_the_spawned_server_stopped_at_exit(tmp_path):
    err = []
    url, pid, in_use, result, has_ui = _run(_env(tmp_path), "flow", stderr=err)
    said = "Prefect API: embedded for this command (set PREFECT_API_URL to report to a server)"
    assert said in err
    assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
    assert in_use == "True" and result == "42"
    assert has_ui == "False"  # the server serves no UI: no "View at" links in the logs
    assert _gone(int(pid))  # stopped with the command, not left listening


def test_an_api_from_a_profile_is_kept_and_the_spawned_server_stopped(tmp_path):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n'
    )
    err = []
    url, pid, in_use = _run(_env(tmp_path, PREFECT_PROFILES_PATH=str(profiles)), stderr=err)
    assert url == "http://127.0.0.1:9/api"
    # the command says where its runs go, in one line (issue 43)
    said = [line for line in err if line.startswith("Prefect API: ")]
    assert said == ["Prefect API: http://127.0.0.1:9/api (configured): this run and its "
                    "artifacts are kept there"]  # fmt: skip
    assert in_use == "False" and _gone(int(pid))


def test_the_server_dies_with_a_killed_command(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "hang"], env=_env(tmp_path), cwd=ROOT,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pid = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGKILL)  # no atexit: only the kernel can stop the server
        proc.wait(timeout=10)
        assert _gone(int(pid))
    finally:
        proc.kill()
        proc.stdout.close()


def test_no_server_is_spawned_where_prefect_already_has_an_api(prefect_harness, monkeypatch):
    from ace_index.flows import embedded_api

    monkeypatch.setattr(embedded_api, "_API", None)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the harness sets it in settings only
    embedded_api.spawn_if_unconfigured()  # in-process `main()` calls, as the tests make
    assert embedded_api._API is None


# the port picked for the server is taken by another process before the server binds it
RACE = """
import socket
from ace_index.flows import embedded_api
held = socket.socket()
held.bind(("127.0.0.1", 0))
held.listen()
taken = held.getsockname()[1]
ports = iter([taken])
free_port = embedded_api._free_port
embedded_api._free_port = lambda: next(ports, None) or free_port()
embedded_api.spawn_if_unconfigured()
first = embedded_api._API.port
import prefect.main
embedded_api.adopt_if_spawned()
from prefect.settings import get_current_settings
print(first == taken, get_current_settings().api.url, taken, flush=True)
"""


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_a_server_that_lost_its_port_is_spawned_again_on_another(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", RACE], env=_env(tmp_path), cwd=ROOT, capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    first_was_taken, url, taken = proc.stdout.split()
    assert first_was_taken == "True"  # the first server really met a taken port
    assert url.startswith("http://127.0.0.1:") and url != f"http://127.0.0.1:{taken}/api"
