from pathlib import Path

import yaml
from prefect import Flow
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[2]


def _load_flow(entrypoint: str):
    assert ".py" not in entrypoint and "/" not in entrypoint  # a module path: no checkout path
    return load_flow_from_entrypoint(entrypoint)


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
    # templates are rendered only under the trigger's own parameters (a deployment's are literal)
    assert trig["parameters"]["store"] == "{{ event.resource['ace.store'] }}"
    assert "{{" not in str(d["train-after-ingest"].get("parameters", {}))
    assert doc["pull"] == []  # nothing frozen at deploy time
    for name in ("ingest", "nightly-reindex"):
        flow = _load_flow(d[name]["entrypoint"])
        assert set(d[name]["parameters"]) <= set(flow.parameters.properties)
    assert "corpus" not in d["nightly-reindex"]["parameters"]  # every source of the store
