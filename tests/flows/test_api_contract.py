"""The service's API contract, checked by a client no one here wrote: schemathesis reads
/openapi.json and sends what the schema allows and what it forbids, against the live
service over a real store, with every check it has (server errors, status codes, content
types and response bodies against their documented schemas, negative data rejected)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import serving

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def store(prefect_harness, tmp_path_factory):
    """Photos and clips (no sounds: the random-weight HTSAT's text tower needs laion-clap's
    tokenizer from the Hugging Face cache, so a zero-shot search here would be a 503)."""
    from conftest import FAULTS_FAST

    from ace_core.synth import CorpusCounts, write_sample_corpus
    from ace_index.flows.cli import main

    root = tmp_path_factory.mktemp("contract")
    write_sample_corpus(root / "c", seed=9, counts=CorpusCounts(images=5, audio=0, videos=2))
    (root / "fast.json").write_text(json.dumps(FAULTS_FAST))
    argv = ["index", str(root / "c"), "--store", str(root / "s"), "--config"]
    assert main([*argv, str(root / "fast.json")]) == 0
    return root / "s"


@pytest.fixture(scope="module")
def live(store):
    from ace_index.flows.serve.app import create_app

    with serving(create_app(str(store), watch_s=0.5)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.slow  # about 100 s: a store of its own and about 900 generated requests
def test_schemathesis_finds_nothing(live, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    argv = [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{live}/openapi.json"]
    argv += ["--checks", "all", "--max-examples", "25", "--workers", "1", "--seed", "4242"]
    argv += ["--suppress-health-check", "too_slow,filter_too_much", "--request-timeout", "60"]
    env = {"PATH": str(SCHEMATHESIS.parent), "HOME": str(tmp_path), "NO_COLOR": "1"}
    run = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
