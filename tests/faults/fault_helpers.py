"""What the fault tests share: the CLI in-process, the one-line check and a small published
store to damage (built once per session, copied per test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import fast_config

from flows.cli import main

FAST = fast_config(3, 3, 5, 3, ingest_epochs=2)


def ace(capsys, *argv) -> tuple[int, str, str]:
    code = main([*argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str, *needles: str) -> str:
    """The CLI's last stderr line is its one-line reason (warnings may precede it)."""
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("ace: "), err[-2000:]
    for n in needles:
        assert n in last, last
    return last


@pytest.fixture(scope="session")
def built(prefect_harness, tmp_path_factory):
    """A published two-item-kind store to damage (copied per test)."""
    from ace_core.synth import CorpusCounts, write_sample_corpus

    root = tmp_path_factory.mktemp("faults")
    write_sample_corpus(root / "corpus", seed=5, counts=CorpusCounts(images=6, audio=2, videos=0))
    (root / "fast.json").write_text(json.dumps(FAST))
    assert main(["index", str(root / "corpus"), "--store", str(root / "store"),
                 "--config", str(root / "fast.json")]) == 0  # fmt: skip
    return root


@pytest.fixture
def store(built, tmp_path) -> Path:
    shutil.copytree(built / "store", tmp_path / "store", symlinks=True)
    return tmp_path / "store"
