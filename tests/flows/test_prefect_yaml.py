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
    # the version the ingest published (its event's payload): a covered retrain does nothing
    assert trig["parameters"]["version"] == "{{ event.payload.version }}"
    assert "{{" not in str(d["train-after-ingest"].get("parameters", {}))
    assert doc["pull"] == []  # nothing frozen at deploy time
    for name in ("ingest", "nightly-reindex"):
        flow = _load_flow(d[name]["entrypoint"])
        assert set(d[name]["parameters"]) <= set(flow.parameters.properties)
    assert "corpus" not in d["nightly-reindex"]["parameters"]  # every source of the store


def test_store_default_tags_and_one_run_at_a_time():
    """The store's default is the Prefect Variable ace_store (rendered by `prefect deploy`);
    each build deployment runs one run at a time, a second one waiting (ENQUEUE); every
    deployment is tagged with its operation (issue 43)."""
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    model = {d.name: d for d in PrefectYamlModel.model_validate(doc).deployments}
    builds = {"nightly-reindex": "index", "ingest": "ingest", "train-after-ingest": "retrain"}
    for name, d in model.items():
        if "store" in d.parameters:
            assert d.parameters["store"] == "{{ prefect.variables.ace_store }}", name
        assert d.tags[0] == "ace" and d.tags[1].startswith("op:"), name
        if name in builds:
            assert d.tags[1] == f"op:{builds[name]}"
            assert d.concurrency_limit.limit == 1, name
            strategy = ConcurrencyLimitStrategy(d.concurrency_limit.collision_strategy)
            assert strategy is ConcurrencyLimitStrategy.ENQUEUE, name
    assert model["audit"].concurrency_limit is None  # read-only: runs side by side
    assert "/srv/ace/store" not in str(doc["deployments"])  # no path to edit in the file
