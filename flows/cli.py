"""The `ace` command line.

Exit codes: 0 success, 2 bad usage or input (one-line reason on stderr), 1 internal failure.
Every command takes --store and --json (machine-readable output on stdout).
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from flows import embedded_api
from tasks import _env  # noqa: F401  (environment before prefect/transformers imports)


class UsageError(Exception):
    """Bad usage or input: reported in one line, exit code 2."""


EXIT_DAMAGED = 3  # the store's files are not what it wrote (`ace verify` names the file)


def _one_line(e: BaseException) -> str:
    """A one-line reason: the first failure of a copy, the OS error with its path."""
    if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list) and e.args[0]:
        src, _, why = e.args[0][0]
        return f"cannot copy {src}: {why}"
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _user_errors() -> tuple[type[BaseException], ...]:
    from ace_core.errors import AceInputError
    from storage.store import StoreError

    return (UsageError, AceInputError, StoreError, FileNotFoundError, NotADirectoryError)


# ----------------------------------------------------------------------------- output


def emit(args, payload: Any, human: Callable[[Any], str]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(human(payload).rstrip("\n") + "\n")


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- config


def _given(args, name: str):
    return getattr(args, name, None)


def embed_config_from_args(args, base=None):
    """EmbedConfig: ``base`` (default settings or --config) with the flags that were given."""
    from dataclasses import replace

    from ace_core.media.pipeline import EmbedConfig, image_embed_dim

    cfg = base or EmbedConfig()
    for name in ("batch_size", "workers", "shard_size"):
        if _given(args, name) is not None and getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    image, audio, pipeline = cfg.image, cfg.audio, cfg.pipeline
    if _given(args, "image_model") is not None:
        image = replace(image, model=args.image_model)
    if _given(args, "image_weights") is not None:
        image = replace(image, pretrained=_absolute_if_file(args.image_weights))
    if _given(args, "audio_model") is not None:
        audio = replace(audio, model=args.audio_model)
    if _given(args, "audio_checkpoint") is not None:
        audio = replace(audio, checkpoint=_absolute_if_file(args.audio_checkpoint))
    if _given(args, "batch_size") is not None:
        pipeline = replace(pipeline, batch_size=args.batch_size)
    if _given(args, "workers") is not None:
        pipeline = replace(pipeline, workers=args.workers)
    shard_size = args.shard_size if _given(args, "shard_size") is not None else cfg.shard_size
    image_embed_dim(image)  # an unknown model name fails here, before any flow starts
    _check_weight_files(image.pretrained, audio.checkpoint)
    return replace(cfg, image=image, audio=audio, pipeline=pipeline, shard_size=shard_size)


def _absolute_if_file(weights: str) -> str:
    """A local weights file is recorded by absolute path: queries and ingests run from other
    folders and must load the same towers."""
    return os.path.abspath(weights) if os.path.isfile(weights) else weights


def _check_weight_files(image_weights: str | None, audio_checkpoint: str | None) -> None:
    """A weights path that does not exist is an error before any work (an image tag such as
    'laion2b_s34b_b79k' has no path separator and no extension)."""
    looks_like_path = image_weights and (
        os.sep in image_weights or os.path.splitext(image_weights)[1]
    )
    if looks_like_path and not os.path.isfile(image_weights):
        raise UsageError(f"--image-weights file not found: {image_weights}")
    from ace_core.media.weights import DEFAULT_WEIGHTS, RANDOM_WEIGHTS

    named = (None, DEFAULT_WEIGHTS, RANDOM_WEIGHTS)
    if audio_checkpoint not in named and not os.path.isfile(audio_checkpoint):
        raise UsageError(f"--audio-checkpoint file not found: {audio_checkpoint}")


def _add_embed_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("embedding")
    g.add_argument(
        "--image-model",
        default=None,
        help="open_clip model name, or the shipped 'ace-tiny-clip' / 'ace-tiny-vit' "
        "(default ViT-B-32)",
    )
    g.add_argument(
        "--image-weights",
        default=None,
        help="open_clip pretrained tag, local checkpoint, or 'random' (explicit random init); "
        "default: the model's standard weights where cached",
    )
    g.add_argument(
        "--audio-model", default=None, help="laion-clap audio model (HTSAT-tiny) or ace-tiny-clap"
    )
    g.add_argument(
        "--audio-checkpoint",
        default=None,
        help="local checkpoint or 'random' (explicit random init); default: the LAION-CLAP "
        "general checkpoint where cached",
    )
    g.add_argument("--batch-size", type=int, default=None, help="items per model call (32)")
    g.add_argument("--workers", type=int, default=None, help="decoding threads (2)")
    g.add_argument("--shard-size", type=int, default=None, help="files per shard (2000)")
    _add_dask_options(p)


def _add_dask_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed embedding (Dask)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--dask-address", default=None, metavar="ADDR",
                   help="embed shards on the Dask scheduler at ADDR (tcp://host:8786)")  # fmt: skip
    x.add_argument("--dask-local", type=int, default=None, metavar="N",
                   help="embed shards on N local Dask worker processes")  # fmt: skip


def _use_dask_if_asked(args) -> None:
    address, local = getattr(args, "dask_address", None), getattr(args, "dask_local", None)
    if local is not None and local <= 0:
        raise UsageError("--dask-local must be a positive number of workers")
    if address or local:
        from flows.embed import use_dask

        use_dask(address, local)


def index_config_from_args(args):
    """The typed IndexConfig, built once: --config JSON file first, then the explicit flags."""
    from dataclasses import replace

    from ace_core.config_io import from_dict
    from ace_core.index_config import IndexConfig

    base = IndexConfig()
    if args.config:
        try:
            with open(args.config) as f:
                base = from_dict(IndexConfig, json.load(f))
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"cannot read --config {args.config}: {e}") from e
    ids, train, retriever = base.ids, base.train, base.retriever
    if args.k is not None:
        ids = replace(ids, kmeans=replace(ids.kmeans, k=args.k))
    if args.levels is not None:
        ids = replace(ids, rqvae=replace(ids.rqvae, levels=args.levels))
    if args.codebook_size is not None:
        ids = replace(ids, rqvae=replace(ids.rqvae, codebook_size=args.codebook_size))
    if args.epochs is not None:
        train = replace(train, epochs=args.epochs)
    if args.max_train_steps is not None:
        if args.max_train_steps < 0:
            raise UsageError("--max-train-steps must be >= 0 (0: no cap)")
        steps = args.max_train_steps or None  # 0: no cap
        train = replace(train, max_steps=steps, dense=replace(train.dense, max_steps=steps))
    if args.encoder is not None:
        retriever = replace(retriever, encoder_path=args.encoder)
    return replace(
        base,
        embed=embed_config_from_args(args, base.embed),
        ids=ids,
        train=train,
        retriever=retriever,
        ablations=base.ablations or args.ablations,
    )


# ----------------------------------------------------------------------------- commands


def cmd_sample_corpus(args) -> int:
    from ace_core.synth import CorpusCounts, write_sample_corpus

    for name in ("images", "audio", "videos"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name} must be >= 0")
    info = write_sample_corpus(
        args.out, seed=args.seed, counts=CorpusCounts(args.images, args.audio, args.videos)
    )
    emit(
        args,
        info,
        lambda d: (
            f"wrote {d['images']} images, {d['audio']} audio clips, "
            f"{d['videos']} videos ({d['captions']} captions) to {d['path']}"
        ),
    )
    return 0


def cmd_tiny_encoders(args) -> int:
    from ace_core.tiny_encoders import TinyEncoderConfig, build_tiny_encoders

    config = TinyEncoderConfig(seed=args.seed)
    result = build_tiny_encoders(args.out, config, progress=_stage_line)
    emit(args, result, _human_tiny)
    return 0


def _stage_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)  # a stage line, on a terminal and off one


def _human_tiny(r: dict) -> str:
    zs = r["zero_shot"]
    how = "reused" if r["reused"] else "trained"
    return "\n".join(
        [
            f"{how} the tiny encoders (they only understand the synthetic world)",
            f"zero-shot text->media on {r['config']['eval_items']} held-out items: "
            f"image R@1 {zs['image']['R@1']:.2f} R@10 {zs['image']['R@10']:.2f}, "
            f"audio R@1 {zs['audio']['R@1']:.2f} R@10 {zs['audio']['R@10']:.2f}",
            "index with: ace index CORPUS " + " ".join(r["args"]),
        ]
    )


def cmd_embed(args) -> int:
    from flows.embed import embed_corpus
    from tasks.embed import warm_up_encoders

    _require_dir(args.corpus)
    config = embed_config_from_args(args)
    if not (args.dask_address or args.dask_local):  # Dask workers load their own models
        warm_up_encoders(config, args.corpus)  # overlaps Prefect's API start-up
    embedded_api.adopt_if_spawned()
    report = embed_corpus(args.corpus, args.store, config)
    report["seconds"] = _command_seconds(args)
    report["items_per_s"] = round(report["items"] / max(report["seconds"], 1e-9), 2)
    emit(args, report, _human_embed)
    return 0


def _human_embed(r: dict) -> str:
    mods = ", ".join(f"{m} {n}" for m, n in r["by_modality"].items()) or "none"
    lines = [
        f"{r['items']} media files: {r['ok']} embedded ({mods}), {r['failed']} failed, "
        f"{r['skipped']} non-media skipped, {r['duplicates']} duplicate paths",
        f"{r['shards']} shard(s), {r['shards_computed']} computed in this run "
        f"({r['embedded']} files); {r['seconds']:.1f} s, {r['items_per_s']} items/s",
    ]
    for err in r["caption_errors"][:10]:
        lines.append(f"warning: {err}")
    return "\n".join(lines + _failed_lines(r.get("failed_items") or []))


def _failed_lines(failed: list[dict], limit: int = 10) -> list[str]:
    lines = [f"  failed: {f.get('location') or f['path']}: {f['error']}" for f in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"  ... and {len(failed) - limit} more failed files (--json lists all)")
    return lines


def cmd_index(args) -> int:
    from flows.index import index_corpus

    if args.corpus is not None:
        _require_dir(args.corpus)
    if args.max_remove is not None and args.max_remove < 0:
        raise UsageError("--max-remove must be >= 0")
    max_remove = None if args.allow_remove else (args.max_remove or 0)
    config = index_config_from_args(args)
    embedded_api.adopt_if_spawned()
    report = index_corpus(args.corpus, args.store, config, max_remove)
    report["seconds"] = _command_seconds(args)
    emit(args, report, _human_publish)
    return 0


def cmd_ingest(args) -> int:
    from flows.index import ingest_batch

    _require_dir(args.corpus)
    embedded_api.adopt_if_spawned()
    report = ingest_batch(args.corpus, args.store)
    report["seconds"] = _command_seconds(args)
    emit(args, report, _human_publish)
    return 0


def _command_seconds(args) -> float:
    """The command's own wall time, from its start (Prefect's start-up included)."""
    return round(time.perf_counter() - args.started, 2)


def _human_publish(r: dict) -> str:
    if not r.get("published", True):
        return f"nothing new to ingest: LATEST stays {r['version']} ({r['seconds']:.1f} s)"
    c, d, e = r["items"], r["id_diff"], r["eval"]
    reused = (
        f"; reused {r['reused_from']} (same embeddings, captions, config and code: IDs and "
        f"retriever taken from it, nothing trained)"
        if r.get("reused_from")
        else ""
    )
    lines = [
        f"published {r['version']} ({r['operation']}, parent {r['parent_version'] or '-'}) "
        f"in {r['seconds']:.1f} s{reused}",
        f"items: {c['items']} ({c['ok']} ok, {c['failed']} failed); IDs: k={r['ids']['k']}, "
        f"{r['ids']['levels']}x{r['ids']['codebook_size']} codes, collision rate "
        f"{r['ids']['collision_rate']} (faiss RQ {r['ids'].get('faiss_rq_collision_rate')}), "
        f"rel. error {r['ids'].get('rel_recon_error')} "
        f"(faiss RQ {r['ids'].get('faiss_rq_rel_recon_error')})",
        f"ID diff vs parent: {d['added']} added, {d['removed']} removed, {d['changed']} changed, "
        f"{d['unchanged']} unchanged",
    ]
    lines += _failed_lines(r.get("failed_items") or [])
    removed = r.get("removed_items") or []
    lines += [f"  removed (file vanished): {x['source_id']}:{x['path']}" for x in removed[:20]]
    if len(removed) > 20:
        lines.append(f"  ... and {len(removed) - 20} more")
    return "\n".join([*lines, _eval_table(e)])


def _eval_table(e: dict) -> str:
    rows = []
    for name in ("generative", "dense"):
        if e.get(name):
            rows.append([name] + [_fmt(e[name].get(k)) for k in METRICS])
    for name, m in (e.get("ablations") or {}).items():
        rows.append([f"ablation: {name}"] + [_fmt(m.get(k)) for k in METRICS])
    for name, m in (e.get("subsets") or {}).items():
        rows.append([f"generative, {name.replace('_', ' ')}"] + [_fmt(m.get(k)) for k in METRICS])
    q = e.get("queries", {})
    head = (
        f"evaluation ({e.get('protocol', 'seen')} items; {q.get('test', 0)} test / "
        f"{q.get('val', 0)} val queries)"
    )
    return head + "\n" + _table(rows, ["model"] + list(METRICS))


METRICS = ("R@1", "R@5", "R@10", "MRR@10")


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def cmd_query(args) -> int:
    from storage.catalog import load_version_model

    text = _check_query(args.text)
    vm = load_version_model(args.store, args.version)
    n = len(vm.model.item_ids)
    if args.k <= 0 or args.k > n:
        raise UsageError(
            f"-k must be between 1 and the number of indexed items ({n}), got {args.k}"
        )
    result = vm.query(text, args.k, beam=args.beam, dense=args.dense, path=args.path)
    emit(args, result, _human_query)
    return 0


def _human_query(p: dict) -> str:
    rows = [
        [n + 1, f"{r['score']:.3f}", r["modality"], r["sid"], r["location"] or r["path"]]
        for n, r in enumerate(p["results"])
    ]
    how = p["mode"] + (f", {p['path']} path" if p.get("path") else "")
    head = f"{how} results for {p['query']!r} ({p['version']})"
    return head + "\n" + _table(rows, ["#", "score", "modality", "semantic id", "location"])


def _check_query(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("query is not valid UTF-8 text") from None
    if not text.strip():
        raise UsageError("empty query: give some text to search for")
    from ace_core.retrieval.retrieval_model import MAX_QUERY_CHARS

    if len(text) > MAX_QUERY_CHARS:
        raise UsageError(f"query too long ({len(text)} characters, at most {MAX_QUERY_CHARS})")
    return text.strip()


def cmd_versions(args) -> int:
    from storage.catalog import list_versions

    emit(args, list_versions(args.store), lambda rs: _human_versions(rs, args.store))
    return 0


def _human_versions(rows: list[dict], store: str) -> str:
    if not rows:
        return f"no versions in {store}"
    header = ["version", "parent", "operation", "created", "items", "failed", "gen R@1",
              "dense R@1", "sources"]  # fmt: skip
    table = [
        [
            ("* " if r["latest"] else "  ") + r["version"],
            r["parent_version"] or "-",
            r["operation"],
            r["created_at"],
            r["items"],
            r["failed"],
            _fmt(r["eval"]["generative"]),
            _fmt(r["eval"]["dense"]),
            ", ".join(r["sources"]) or "-",
        ]
        for r in rows
    ]
    return _table(table, header)


def cmd_audit(args) -> int:
    from storage.audit import audit

    d = audit(args.store, args.from_version, args.to_version)
    emit(
        args,
        d,
        lambda d: (
            f"{d['from']} -> {d['to']}: {d['added']} added, {d['removed']} "
            f"removed, {d['changed']} changed, {d['unchanged']} unchanged"
            + "".join(
                f"\n  changed {c['item_id'][:12]}: {c['from']} -> {c['to']}"
                for c in d["changed_items"][:20]
            )
        ),
    )
    return 0


def cmd_eval(args) -> int:
    from storage.catalog import ablation_metrics, version_eval

    if args.queries:
        from storage.query_eval import evaluate_query_file

        out = evaluate_query_file(args.store, args.version, args.queries, path=args.path)
        emit(args, out, _human_query_eval)
        return 0
    out = version_eval(args.store, args.version)
    if args.ablations:
        out["ablations"] = ablation_metrics(args.store, out["version"])  # saved and reused
    else:
        out.pop("ablations", None)
    emit(args, out, lambda o: f"{o['version']}: " + _eval_table(o))
    return 0


def _human_query_eval(o: dict) -> str:
    rows = [
        [name, *(o[name].get(m) for m in ("R@1", "R@5", "R@10", "MRR@10"))]
        for name in ("generative", "dense", "text_tower_dense")
        if o.get(name)
    ]
    head = f"{o['version']}: {o['queries']} queries (generative path: {o['path']})"
    if o["unknown_items"]:
        head += f"; {len(o['unknown_items'])} named items not in the index were skipped"
    return head + "\n" + _table(rows, ["model", "R@1", "R@5", "R@10", "MRR@10"])


def cmd_serve(args) -> int:
    from flows.serve import is_loopback, serve

    token = args.token or os.environ.get("ACE_SERVE_TOKEN")
    if not is_loopback(args.host) and not token:
        raise UsageError(
            f"--host {args.host} is reachable from other machines: give --token (or set "
            f"ACE_SERVE_TOKEN); without one, serve on 127.0.0.1"
        )
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1..65535, got {args.port}")
    from storage.store import Store

    Store(args.store).resolve(None)  # a store with nothing to serve is an error now
    print(f"serving {args.store} on http://{args.host}:{args.port}/ (API docs: /docs)",
          file=sys.stderr)  # fmt: skip
    serve(args.store, args.host, args.port, token)
    return 0


def cmd_verify(args) -> int:
    from storage.store import Store
    from storage.verify import verify_version

    versions = Store(args.store).versions() if args.all else [args.version]
    reports = [verify_version(args.store, v) for v in versions]
    emit(
        args,
        reports if args.all else reports[0],
        lambda _: "\n".join(
            f"{r['version']}: {r['files']} files ({r['bytes']} bytes) match the manifest"
            for r in reports
        ),
    )
    return 0


def cmd_sources(args) -> int:
    from storage import sources as src
    from storage.store import Store

    store = Store(args.store)
    if args.action == "add":
        m = src.add_source(store, args.folder)
        what = (
            "added"
            if m.added
            else f"already held by {m.source.source_id}"
            + (f" (as {m.prefix}/)" if m.prefix else "")
        )
        out = {"action": "add", "source_id": m.source.source_id, "location": m.source.location,
               "prefix": m.prefix, "added": m.added}  # fmt: skip
        emit(args, out, lambda o: f"{o['location']}: {what} ({o['source_id']})")
    elif args.action == "remove":
        s = src.remove_source(store, args.folder)
        out = {"action": "remove", "source_id": s.source_id, "location": s.location}
        emit(args, out, lambda o: (
            f"removed source {o['source_id']} ({o['location']}); its items leave the index at "
            "the next `ace index --allow-remove`"
        ))  # fmt: skip
    else:
        rows = [{"source_id": s.source_id, "location": s.location} for s in src.read_sources(store)]
        emit(args, rows, lambda rs: _table(
            [[r["source_id"], r["location"]] for r in rs], ["source", "location"]
        ) if rs else f"no sources in {args.store}")  # fmt: skip
    return 0


def cmd_import_captions(args) -> int:
    from ace_core.caption_formats import convert

    sources = []
    for src in args.sources:
        path, _, split = src.partition("=")
        if not os.path.isfile(path):
            raise UsageError(f"caption file not found: {path}")
        sources.append((path, split or None))
    records = convert(
        args.format, sources, path_template=args.path_template, encoding=args.encoding
    )
    with open(args.out, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    splits: dict[str, int] = {}
    for r in records:
        splits[r["split"]] = splits.get(r["split"], 0) + 1
    info = {
        "format": args.format,
        "out": args.out,
        "items": len(records),
        "captions": sum(len(r["captions"]) for r in records),
        "splits": splits,
    }
    emit(
        args,
        info,
        lambda d: (
            f"wrote {d['items']} items ({d['captions']} captions; splits "
            + ", ".join(f"{k} {v}" for k, v in sorted(d["splits"].items()))
            + f") to {d['out']}"
        ),
    )
    return 0


def _require_dir(path: str) -> None:
    if not os.path.isdir(path):
        raise UsageError(f"corpus directory not found: {path}")


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """No abbreviations: a misspelled or shortened option is an error, never a guess."""

    def __init__(self, *a, **kw):
        kw.setdefault("allow_abbrev", False)
        super().__init__(*a, **kw)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--store", default="./ace-store", help="index store (default %(default)s)")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = _Parser(prog="ace", description="ACE generative cross-modal index")
    parser.add_argument("--version", action="version", version=f"ace {_package_version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_corpus_commands(sub, common)
    _add_read_commands(sub, common)
    return parser


def _package_version() -> str:
    from ace_core import __version__

    return __version__


def _add_corpus_commands(sub, common) -> None:
    p = sub.add_parser("sample-corpus", parents=[common], help="write a synthetic corpus")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--audio", type=int, default=24)
    p.add_argument("--videos", type=int, default=16)
    p.set_defaults(func=cmd_sample_corpus)

    p = sub.add_parser(
        "tiny-encoders", parents=[common], help="train (or reuse) the small aligned encoders"
    )
    p.add_argument("out", help="folder for the weights (reused when it holds this build)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny_encoders)

    p = sub.add_parser("embed", parents=[common], help="discover, decode and embed a corpus")
    p.add_argument("corpus")
    _add_embed_options(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "index", parents=[common], help="full re-index of the store's sources, publish a version"
    )
    p.add_argument("corpus", nargs="?", help="a folder to index (added as a source when new)")
    _add_embed_options(p)
    _add_index_options(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ingest", parents=[common], help="add new files of a folder to the index")
    p.add_argument("corpus")
    _add_dask_options(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("sources", parents=[common], help="list, add or remove the store's sources")
    p.add_argument("action", choices=["list", "add", "remove"])
    p.add_argument("folder", nargs="?", help="add: a folder; remove: a source id or location")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser(
        "import-captions",
        parents=[common],
        help="convert benchmark caption files to captions.jsonl",
    )
    p.add_argument("format", choices=["karpathy", "coco", "clotho", "audiocaps", "msrvtt"])
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SRC[=SPLIT]",
        help="caption files; CSV formats need =train|val|test (COCO: from the file name)",
    )
    p.add_argument("--out", required=True, help="captions.jsonl to write (at the corpus root)")
    p.add_argument(
        "--path-template",
        default=None,
        help="media path from CSV/JSON fields, e.g. '{youtube_id}.wav' or 'val2017/{file_name}'",
    )
    p.add_argument(
        "--encoding", default=None, help="of CSV files (default: UTF-8, else detected: cp949)"
    )
    p.set_defaults(func=cmd_import_captions)


def _add_read_commands(sub, common) -> None:
    p = sub.add_parser("query", parents=[common], help="top-k items for a text query")
    p.add_argument("text")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--version", default=None)
    p.add_argument("--beam", type=int, default=10, help="beam size (at least k)")
    p.add_argument("--dense", action="store_true", help="use the dense baseline instead")
    _add_path_option(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("versions", parents=[common], help="list published versions")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("audit", parents=[common], help="identifier diff between versions")
    p.add_argument("--from", dest="from_version", default=None)
    p.add_argument("--to", dest="to_version", default=None)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("serve", parents=[common], help="the search service and web page")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=None, help="required for a non-loopback bind")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("verify", parents=[common], help="check a version's files (sha256)")
    p.add_argument("--version", default=None, help="default: LATEST")
    p.add_argument("--all", action="store_true", help="every published version")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("eval", parents=[common], help="evaluation of a version")
    p.add_argument("--version", default=None)
    p.add_argument("--ablations", action="store_true", help="include (train if needed) ablations")
    p.add_argument(
        "--queries",
        default=None,
        metavar="FILE.jsonl",
        help='score the version on your own {"query": ..., "path": ...} lines',
    )
    _add_path_option(p)
    p.set_defaults(func=cmd_eval)


def _add_path_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--path",
        choices=("auto", "captions", "zero-shot", "both"),
        default="auto",
        help="captions: the caption-trained text encoder; zero-shot: the item encoders' text "
        "towers; both: merged by score; auto: what the version was trained with",
    )


def _add_index_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("semantic IDs and retriever")
    g.add_argument("--config", default=None, help="JSON file with IndexConfig settings")
    g.add_argument("--k", type=int, default=None, help="coarse clusters (default: automatic)")
    g.add_argument("--levels", type=int, default=None, help="RQ-VAE levels (default 3)")
    g.add_argument("--codebook-size", type=int, default=None, help="codes per level (default 256)")
    g.add_argument("--epochs", type=int, default=None, help="retriever training epochs (max)")
    g.add_argument(
        "--max-train-steps", type=int, default=None, metavar="N",
        help="optimisation-step budget of each retriever model (20000; 0: no cap)",
    )  # fmt: skip
    g.add_argument("--encoder", default=None, help="local Hugging Face text encoder folder")
    g.add_argument("--ablations", action="store_true", help="also train the ablation models")
    g = p.add_argument_group("removals (items of LATEST whose files vanished)")
    g.add_argument(
        "--allow-remove", action="store_true", help="publish even if indexed items would go"
    )
    g.add_argument(
        "--max-remove", type=int, default=None, metavar="N", help="allow up to N removals (0)"
    )


PROJECT_LOGGERS = ("ace_core", "storage", "tasks", "flows", "ace")


def _configure_logging(verbose: bool) -> None:
    """Our loggers print one line each to stderr; they do not propagate to the root logger,
    where Prefect installs its own console handler (which would print every line twice)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in PROJECT_LOGGERS:
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG if verbose else logging.WARNING)
        log.propagate = False
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)


class _CliConsole(logging.Filter):
    """What the CLI shows of Prefect's console output: our stage lines (progress lines only
    off a terminal, where no bars are drawn) and Prefect's warnings. Prefect's INFO chatter and
    its tracebacks of a failed run are left out: the CLI reports a failure in one line (details
    with -v) and the run's full log stays in Prefect's API (the UI)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("prefect"):
            return True
        if getattr(record, "ace_stage", False):
            return not (getattr(record, "ace_progress", False) and sys.stderr.isatty())
        if record.levelno >= logging.ERROR:
            return self.verbose
        return record.levelno >= logging.WARNING or self.verbose


def _cli_console(verbose: bool) -> None:
    import prefect.main  # noqa: F401  (sets up Prefect's logging: its console handler)
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        logging.getLogger(n) for n in logging.root.manager.loggerDict if n.startswith("prefect")
    ]
    for log in loggers:
        for h in log.handlers:
            if isinstance(h, PrefectConsoleHandler):
                h.filters[:] = [f for f in h.filters if not isinstance(f, _CliConsole)]
                h.addFilter(_CliConsole(verbose))


FLOW_COMMANDS = {"embed", "index", "ingest"}


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage and the reason
        return 2 if e.code not in (0, None) else 0
    args.started = started
    _configure_logging(args.verbose)
    if args.command in FLOW_COMMANDS:
        embedded_api.spawn_if_unconfigured()  # starts while the command imports its models
        _cli_console(args.verbose)
    try:
        _use_dask_if_asked(args)
        return args.func(args)
    except KeyboardInterrupt:
        print("ace: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        from storage.store import DamagedStoreError

        if isinstance(e, DamagedStoreError):
            print(f"ace: {e}", file=sys.stderr)
            return EXIT_DAMAGED
        print(f"ace: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, shutil.Error) as e:  # the machine's: disk full, read-only, permissions
        print(f"ace: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - last resort: one line, details with -v
        logging.getLogger("ace").debug("internal failure", exc_info=True)
        print(
            f"ace: internal error: {type(e).__name__}: {e} (run with -v for details)",
            file=sys.stderr,
        )
        return 1


def run() -> None:
    """The `ace` console script: ``main()``, then CPython's own exit sequence (join threads,
    run the exit handlers: Prefect's log and event workers, logging, the embedded API) and
    an exit without the module teardown that follows it (~1.5 s after a flow command,
    measured: freeing torch and module state). The usual exit where those hooks are absent."""
    code = main()
    join_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if join_threads is None or run_exit_handlers is None:
        sys.exit(code)
    join_threads()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`ace ... | head`) or stream
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
