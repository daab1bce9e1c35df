"""Thread oversubscription on a busy machine: torch's pool is sized to the free cores."""

from __future__ import annotations

import subprocess
import sys
import time

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
