"""The product imports as ``ace_index.storage`` / ``.query`` / ``.tasks`` / ``.flows`` (issue
43): from a working directory that holds folders of those names (PREFECT_HOME holds
``storage/``; a worker runs flows there), a build runs, a cancelled one ends cleanly, and every
deployment's entrypoint loads the way Prefect's runner loads it to run cancellation hooks
(the working directory first on ``sys.path``). The bare names do break there: the control."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("storage", "tasks", "query", "flows")


@pytest.fixture
def crowded(tmp_path) -> Path:
    """A working directory holding a folder named like each layer (empty, as in PREFECT_HOME)."""
    home = tmp_path / "home"
    for name in LAYERS:
        (home / name / "build").mkdir(parents=True)
    return home


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; sys.path.insert(0, '.')\n" + code  # as load_flow_from_flow_run does
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_bare_layer_names_are_shadowed_there(crowded):
    p = _python("import storage.build.publish", crowded)
    assert p.returncode != 0 and "No module named 'storage.build.publish'" in p.stderr


def test_every_deployment_entrypoint_loads_there(crowded):
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    entrypoints = sorted({d["entrypoint"] for d in deployments})
    assert entrypoints and all(e.startswith("ace_index.flows.") for e in entrypoints)
    load = "from prefect.flows import load_flow_from_entrypoint as load\n"
    code = load + f"for e in {entrypoints!r}:\n    print(load(e).name)\n"
    p = _python(code, crowded)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(p.stdout.split()) == len(entrypoints)


def _ace(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_API_URL": ""}  # the command starts its own API
    return subprocess.Popen([sys.executable, "-m", "ace_index.flows.cli", *argv], cwd=cwd,
                            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow  # two builds in fresh processes (about 70 s on 2 busy cores)
def test_a_build_and_a_cancelled_build_run_there(built, crowded, tmp_path):
    argv = ["index", str(built / "corpus"), "--config", str(built / "fast.json"), "--store"]
    done = _ace([*argv, str(tmp_path / "a")], crowded)
    err = done.stderr.read()
    assert done.wait(timeout=300) == 0, err[-2000:]
    assert (tmp_path / "a" / "LATEST").read_text().strip() == "v000001"
    cancelled = _ace([*argv, str(tmp_path / "b")], crowded)
    for line in cancelled.stderr:  # until the flow is at work
        if "discovered" in line or "embedding" in line:
            break
    cancelled.send_signal(signal.SIGTERM)
    rest = cancelled.stderr.read()
    assert cancelled.wait(timeout=30) == 143, rest
    assert "Traceback" not in rest and "No module named" not in rest
    assert not (tmp_path / "b" / "LATEST").exists()
