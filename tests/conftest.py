"""Shared fixtures: small real models, the shared media corpus, one Prefect harness."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

if "PREFECT_HOME" not in os.environ:  # the session's own, removed when it ends
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="ace-prefect-home-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], True)
# torch's own thread count, unchanged between runs: seeded training is compared bit for bit
# (tests/ace_core/test_cpu_share.py checks the default "auto" sizing on its own)
os.environ.setdefault("ACE_THREADS", "fixed")
from ace_index.tasks import _env  # noqa: E402,F401  (before prefect is imported anywhere)

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def fast_config(
    epochs: int,
    eval_every: int,
    dense_epochs: int,
    rqvae_epochs: int,
    *,
    ingest_epochs: int | None = None,
    shard_size: int | None = 16,
) -> dict:
    """An IndexConfig as JSON (``--config``) that trains in seconds: few epochs, and the tiny
    random-weight encoders unless ``shard_size`` is None (the flags give the encoders)."""
    train = {"epochs": epochs, "eval_every": eval_every, "examples_per_item": None,
             "dense": {"epochs": dense_epochs}}  # fmt: skip
    config = {"train": train, "ids": {"rqvae": {"max_epochs": rqvae_epochs}}}
    if ingest_epochs is not None:
        config["ingest"] = {"epochs": ingest_epochs}
    if shard_size is not None:
        config["embed"] = {
            "image": {"model": "ace-tiny-vit", "pretrained": "random"},
            "audio": {"checkpoint": "random"},
            "shard_size": shard_size,
        }
    return config


def tiny_encoder_args(shard_size: int) -> list[str]:
    """The command-line flags of the tiny random-weight encoders."""
    return ["--image-model", "ace-tiny-vit", "--image-weights", "random",
            "--audio-checkpoint", "random", "--shard-size", str(shard_size)]  # fmt: skip


def free_port() -> int:
    """A loopback port no one listens on (the OS's pick; free when this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app, **config):
    """``app`` served by uvicorn in a thread on a free loopback port (``config``: more
    uvicorn.Config settings); yields the port, stops the server after."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not (SHARED_MEDIA / "captions.jsonl").exists():
        pytest.skip(f"../shared/media not found at {SHARED_MEDIA} (only present in CI and dev)")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def tiny_embed_config():
    from ace_core.media.embed_config import EmbedConfig, PipelineConfig
    from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig

    return EmbedConfig(
        image=ImageEncoderConfig(model="ace-tiny-vit", pretrained="random"),
        audio=AudioEncoderConfig(checkpoint="random"),
        pipeline=PipelineConfig(batch_size=16),
        shard_size=64,
    )


@pytest.fixture(scope="session")
def tiny_encoders(tiny_embed_config):
    from ace_core.media.pipeline import build_encoder

    image = build_encoder("image", tiny_embed_config, device="cpu")
    return {
        "image": image,
        "video": build_encoder("video", tiny_embed_config, shared=image),
        "audio": build_encoder("audio", tiny_embed_config, device="cpu"),
    }


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    from ace_core.synth import CorpusCounts, write_sample_corpus

    out = tmp_path_factory.mktemp("corpus")
    write_sample_corpus(out, seed=11, counts=CorpusCounts(images=12, audio=6, videos=4))
    return out


@pytest.fixture(autouse=True)
def _project_logs_reach_caplog():
    """The CLI detaches our loggers from the root logger (Prefect prints on it too); undo
    that after each test so caplog sees every record."""
    yield
    import logging

    for name in ("ace_core", "storage", "tasks", "flows", "ace"):
        log = logging.getLogger(name)
        log.propagate = True
        log.handlers[:] = []
        log.setLevel(logging.NOTSET)


# ----------------------------------------------------------------- the fault tests' store
# Defined here, not in tests/faults, so that every module shares one build per session (a
# fixture imported into several modules is a separate fixture in each).
FAULTS_FAST = fast_config(3, 3, 5, 3, ingest_epochs=2)


@pytest.fixture(scope="session")
def built(prefect_harness, tmp_path_factory):
    """A published two-item-kind store to damage (copied per test)."""
    import json

    from ace_core.synth import CorpusCounts, write_sample_corpus
    from ace_index.flows.cli import main

    root = tmp_path_factory.mktemp("faults")
    write_sample_corpus(root / "corpus", seed=5, counts=CorpusCounts(images=6, audio=2, videos=0))
    (root / "fast.json").write_text(json.dumps(FAULTS_FAST))
    assert main(["index", str(root / "corpus"), "--store", str(root / "store"),
                 "--config", str(root / "fast.json")]) == 0  # fmt: skip
    return root


@pytest.fixture
def store(built, tmp_path) -> Path:
    """A copy of ``built``'s store for one test (modules with a store of their own override
    this fixture)."""
    import shutil

    shutil.copytree(built / "store", tmp_path / "store", symlinks=True)
    return tmp_path / "store"
