"""Commands that build versions: `ace embed`, `ace index`, `ace ingest`, `ace sources`."""

from __future__ import annotations

import sys
import time

from ace_index.flows import embedded_api
from ace_index.flows.cli import present
from ace_index.flows.cli.options import (
    UsageError,
    add_dask_options,
    add_embed_options,
    add_index_options,
    check_weight_files,
    embed_config_from_args,
    index_config_from_args,
    require_dir,
    shard_runner_from_args,
)

FLOW_COMMANDS = {"embed", "index", "ingest"}  # they run Prefect flows (main starts the API)
BUILD_COMMANDS = {"index", "ingest"}  # they publish (main takes the build lock first)


def add_commands(sub, common) -> None:
    p = sub.add_parser("embed", parents=[common], help="discover, decode and embed a corpus")
    p.add_argument("corpus", help="folder of media files (recursively)")
    add_embed_options(p)
    p.set_defaults(func=cmd_embed, precheck=precheck)

    p = sub.add_parser(
        "index", parents=[common], help="full re-index of the store's sources, publish a version"
    )
    p.add_argument("corpus", nargs="?", help="a folder to index (added as a source when new)")
    add_embed_options(p)
    add_index_options(p)
    p.set_defaults(func=cmd_index, precheck=precheck)

    p = sub.add_parser("ingest", parents=[common], help="add new files of a folder to the index")
    p.add_argument("corpus", help="folder whose new files join the index")
    add_dask_options(p)
    p.set_defaults(func=cmd_ingest, precheck=precheck)

    p = sub.add_parser("sources", parents=[common], help="list, add or remove the store's sources")
    p.add_argument("action", choices=["list", "add", "remove"], help="what to do")
    p.add_argument("folder", nargs="?", help="add: a folder; remove: a source id or location")
    p.set_defaults(func=cmd_sources)


def precheck(args) -> None:
    """The corpus folder and weight files exist (checked in a fraction of a second)."""
    if getattr(args, "corpus", None) is not None:
        require_dir(args.corpus)
    check_weight_files(
        getattr(args, "image_weights", None), getattr(args, "audio_checkpoint", None)
    )


def cmd_embed(args) -> int:
    from ace_index.flows.embed import embed_corpus
    from ace_index.tasks.embed import warm_up_encoders

    require_dir(args.corpus)
    config = embed_config_from_args(args)
    runner = shard_runner_from_args(args)
    if not (args.dask_address or args.dask_local):  # Dask workers load their own models
        warm_up_encoders(config, args.corpus)  # overlaps Prefect's API start-up
    embedded_api.adopt_if_spawned()
    report = embed_corpus(args.corpus, args.store, config, runner)
    report["seconds"] = command_seconds(args)
    report["items_per_s"] = round(report["items"] / max(report["seconds"], 1e-9), 2)
    present.emit(args, report, present.embed_report)
    return 0


def cmd_index(args) -> int:
    from ace_index.flows.index import index_corpus

    if args.corpus is not None:
        require_dir(args.corpus)
    if args.max_remove is not None and args.max_remove < 0:
        raise UsageError("--max-remove must be >= 0")
    max_remove = None if args.allow_remove else (args.max_remove or 0)
    config = _index_config(args)
    runner = shard_runner_from_args(args)
    embedded_api.adopt_if_spawned()
    report = index_corpus(
        args.corpus, args.store, config, max_remove, runner, args.refit, explicit=True
    )  # a person's run: it lifts a rollback's pin (flows/index.py)
    report["seconds"] = command_seconds(args)
    report["files"] = _run_files(args.store, report)
    present.emit(args, report, present.publish_report)
    return 0


def cmd_ingest(args) -> int:
    from ace_index.flows.index import ingest_batch

    require_dir(args.corpus)
    runner = shard_runner_from_args(args)
    embedded_api.adopt_if_spawned()
    report = ingest_batch(args.corpus, args.store, runner, explicit=True)  # lifts a pin
    report["seconds"] = command_seconds(args)
    report["files"] = _run_files(args.store, report)
    present.emit(args, report, present.publish_report)
    return 0


def _run_files(store: str, report: dict) -> dict | None:
    """The published version's added, removed and failed files (None: nothing published)."""
    from ace_index.storage.build.audit import run_files

    return run_files(store, report["version"]) if report.get("published") else None


def _index_config(args):
    """The store's recorded configuration (LATEST's) with the options given on top; the
    defaults for a new store; a --config file replaces the recorded one. Says which."""
    from ace_index.storage.formats.manifest import recorded_config

    recorded = None if args.config else recorded_config(args.store)
    config = index_config_from_args(args, recorded[0] if recorded else None)
    what = (
        f"the configuration of {recorded[1]}"
        if recorded
        else f"--config {args.config}"
        if args.config
        else "the default configuration"
    )
    given = ", with the options given" if recorded and _options_given(args) else ""
    print(f"configuration: {what}{given}", file=sys.stderr)
    return config


def _options_given(args) -> bool:
    names = (
        "image_model",
        "image_weights",
        "audio_model",
        "audio_checkpoint",
        "batch_size",
        "workers",
        "shard_size",
        "k",
        "levels",
        "codebook_size",
        "epochs",
        "examples_per_item",
        "max_train_steps",
        "encoder",
        "train_workers",
        "train_nodes",
        "train_rendezvous",
    )
    return any(getattr(args, n, None) is not None for n in names) or args.ablations


def command_seconds(args) -> float:
    """The command's own wall time, from its start (Prefect's start-up included)."""
    return round(time.perf_counter() - args.started, 2)


def cmd_sources(args) -> int:
    from ace_index.storage.store import open_store
    from ace_index.storage.store import sources as src

    store = open_store(args.store)
    if args.action == "add":
        m = src.add_source(store, args.folder)
        held = f"already held by {m.source.source_id}" + (f" (as {m.prefix}/)" if m.prefix else "")
        what = "added" if m.added else held
        out = {
            "action": "add",
            "source_id": m.source.source_id,
            "location": m.source.location,
            "prefix": m.prefix,
            "added": m.added,
        }
        present.emit(args, out, lambda o: f"{o['location']}: {what} ({o['source_id']})")
    elif args.action == "remove":
        s = src.remove_source(store, args.folder)
        out = {"action": "remove", "source_id": s.source_id, "location": s.location}
        present.emit(
            args,
            out,
            lambda o: (
                f"removed source {o['source_id']} ({o['location']}); its items leave the index at "
                "the next `ace index --allow-remove`"
            ),
        )
    else:
        rows = [{"source_id": s.source_id, "location": s.location} for s in src.read_sources(store)]
        present.emit(
            args,
            rows,
            lambda rs: (
                present.table([[r["source_id"], r["location"]] for r in rs], ["source", "location"])
                if rs
                else f"no sources in {args.store}"
            ),
        )
    return 0
