import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_default_prefect_home_is_created_per_user(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    out = subprocess.run(
        [sys.executable, "-c", "import os, flows; print(os.environ['PREFECT_HOME'])"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(tmp_path / "cache" / "ace-index" / "prefect")
    assert Path(out).is_dir()  # Prefect creates one level only; SQLite needs the folder


def test_the_console_script_exits_with_mains_code_and_flushed_output(tmp_path):
    """`ace` (flows.cli:run) skips the interpreter's module teardown: the exit code and
    everything printed must still come through."""
    run = [sys.executable, "-c", "from ace_index.flows.cli import run; run()"]
    (tmp_path / "empty-store").mkdir()
    ok = subprocess.run(
        [*run, "sources", "list", "--store", str(tmp_path / "empty-store"), "--json"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    bad = subprocess.run(
        [*run, "embed", str(tmp_path / "missing"), "--store", str(tmp_path / "s")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert (ok.returncode, bad.returncode) == (0, 2), ok.stderr + bad.stderr
    assert ok.stdout.strip().startswith("[") or ok.stdout.strip().startswith("{")
    assert "corpus directory not found" in bad.stderr


_FLOW_THEN_PROBE = """
import json, sys, threading
import torch
from ace_index.flows.index import {flow}
try:  # the store path is under a file: the flow fails at its first store access
    {flow}.fn({args}store=sys.argv[1])
except OSError:
    pass
def probe(out):  # denormal floats, a product big enough to be split over threads
    out.append(int(((torch.full((512, 512), 1e-39) @ torch.eye(512)) != 0).sum()))
out = []
probe(out)
t = threading.Thread(target=probe, args=(out,))
t.start(); t.join()
print(json.dumps(out))
"""


@pytest.mark.parametrize("flow", ["index_corpus", "ingest_batch", "train_retriever"])
def test_training_flows_flush_denormals_before_their_work(tmp_path, flow):
    """A trained decoder's gradients hold denormal floats (2.3x slower steps): the flows that
    train set flush-to-zero first, for their thread and the threads it starts."""
    (tmp_path / "file").write_text("")
    args = "corpus=sys.argv[1], " if flow == "ingest_batch" else ""
    script = _FLOW_THEN_PROBE.format(flow=flow, args=args)
    res = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "file" / "store")],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout) == [0, 0]  # this thread and a thread started after
