import importlib.util
from pathlib import Path

import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[2]


def _load_flow(entrypoint: str):
    path, func = entrypoint.split(":")
    spec = importlib.util.spec_from_file_location(f"_ep_{func}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, func)


def test_every_deployment_entrypoint_resolves_to_a_flow():
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in doc["deployments"]}
    assert {"nightly-reindex", "ingest", "train-after-ingest"} <= set(deployments)
    for d in deployments.values():
        assert isinstance(_load_flow(d["entrypoint"]), Flow), d["name"]
        assert d["work_pool"]["name"] == "ace-process"


def test_schedule_and_trigger():
    from prefect.client.schemas.schedules import CronSchedule

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    d = {x["name"]: x for x in doc["deployments"]}
    cron = d["nightly-reindex"]["schedules"][0]["cron"]
    assert CronSchedule(cron=cron, timezone="UTC").cron == cron  # validated by Prefect
    trig = d["train-after-ingest"]["triggers"][0]
    assert trig["expect"] == ["ace.version.published"]
    assert trig["match"]["ace.operation"] == "incremental_append"
    for name in ("ingest", "nightly-reindex"):
        flow = _load_flow(d[name]["entrypoint"])
        assert set(d[name]["parameters"]) <= set(flow.parameters.properties)
    assert "corpus" not in d["nightly-reindex"]["parameters"]  # every source of the store
