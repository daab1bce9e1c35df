"""Thread oversubscription on a busy machine: torch's pool is sized to the free cores."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ace_core.cpu_share import CoreShare, allowed_cores


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.skipif(allowed_cores() < 2, reason="needs at least 2 cores")
def test_a_busy_process_takes_a_thread_from_the_pool(restore_threads):
    share = CoreShare("auto")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert share.settle(1.0) <= share.cores - 1
    finally:
        hog.kill()
    time.sleep(0.5)
    assert share.settle(1.0) >= share.cores - 1  # the core is free again (within noise)


def test_modes(restore_threads):
    assert CoreShare("fixed").update() is None
    assert CoreShare("1").update() == 1 and torch.get_num_threads() == 1


_DENORMAL_PROBE = """
import json, sys, threading, warnings
import numpy as np, torch
warnings.simplefilter("error")  # numpy's subnormal warnings would fail the probe
torch.set_num_threads(2)
if sys.argv[1] == "flush":
    from ace_core.cpu_share import flush_denormals
    assert flush_denormals()
    np.finfo(np.float32).smallest_subnormal  # no warning once measured
def probe(out):
    x = torch.full((512, 512), 1e-39)  # denormal floats, big enough to be split over threads
    out.append(int(((x @ torch.eye(512)) != 0).sum()) + int(((x * 0.5) != 0).sum()))
out = []
probe(out)
t = threading.Thread(target=probe, args=(out,))
t.start(); t.join()
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["flush", "keep"])
def test_flush_denormals_zeroes_them_here_and_in_threads_started_later(mode):
    res = subprocess.run(
        [sys.executable, "-c", _DENORMAL_PROBE, mode],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    nonzero = json.loads(res.stdout)  # [this thread, a thread started after the call]
    if mode == "flush":
        assert nonzero == [0, 0]
    elif torch.backends.cpu.get_cpu_capability() != "DEFAULT":  # x86 SIMD: denormals kept
        assert all(n > 0 for n in nonzero)
