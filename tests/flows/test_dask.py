"""The embedding fan-out on a real Dask cluster (a LocalCluster of worker processes, the same
code path as a scheduler address): `ace index --dask-local 2` gets the embeddings a local
run gets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import fast_config

from ace_index.flows import embed as embed_flows
from ace_index.flows.cli import main
from ace_index.storage.formats.version_data import version_embeddings
from ace_index.storage.store import Store

FAST = fast_config(2, 2, 3, 2, shard_size=4)  # several shards


@pytest.fixture
def runners_used(monkeypatch):
    """The task runner each index run's embedding subflow was given (where it is called)."""
    import ace_index.flows.index as index_flows

    used = []

    def spy(runner):
        stage = embed_flows.embed_on(runner)
        used.append(type(stage.task_runner).__name__)
        return stage

    monkeypatch.setattr(index_flows, "embed_on", spy)
    return used


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_dask_workers_embed_what_a_local_run_embeds(
    prefect_harness, tmp_path, capsys, runners_used
):
    from ace_core.synth import CorpusCounts, write_sample_corpus

    write_sample_corpus(tmp_path / "c", seed=6, counts=CorpusCounts(images=6, audio=2, videos=2))
    cfg = tmp_path / "fast.json"
    cfg.write_text(json.dumps(FAST))
    runs = {}
    for name, extra in (("local", []), ("dask", ["--dask-local", "2"])):
        store = tmp_path / name
        code = main(["index", str(tmp_path / "c"), "--store", str(store), "--config", str(cfg),
                     "--json", *extra])  # fmt: skip
        out = capsys.readouterr()
        assert code == 0, out.err[-3000:]
        runs[name] = (json.loads(out.out), version_embeddings(Store(store).version()))
    assert runners_used == ["ThreadPoolTaskRunner", "DaskTaskRunner"]
    assert type(embed_flows.embed_stage.task_runner).__name__ == "ThreadPoolTaskRunner"
    (local, (ids_l, mods_l, x_l)), (dask, (ids_d, mods_d, x_d)) = runs["local"], runs["dask"]
    assert dask["shards_computed"] == local["shards_computed"] >= 3
    assert ids_d == ids_l and mods_d == mods_l and len(ids_l) == 10
    np.testing.assert_allclose(x_d, x_l, atol=1e-5)  # worker processes: other thread counts


def test_dask_options_are_checked(capsys):
    assert main(["index", "x", "--dask-local", "0"]) == 2
    assert main(["index", "x", "--dask-local", "2", "--dask-address", "tcp://h:1"]) == 2
    assert "not allowed with" in capsys.readouterr().err
