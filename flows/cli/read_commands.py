"""Commands that read published versions: `ace query`, `ace versions`, `ace audit`,
`ace eval`, `ace verify`, `ace serve`."""

from __future__ import annotations

import os
import sys

from ace_core.media.modalities import MODALITY_NAMES
from ace_index.flows.cli import present
from ace_index.flows.cli.options import EXIT_DAMAGED, UsageError, add_path_option
from ace_index.query.filters import SORTS
from ace_index.query.request import DEFAULT_BEAM, MAX_K


def add_commands(sub, common) -> None:
    p = sub.add_parser("query", parents=[common], help="top-k items for a text query")
    p.add_argument("text", help="what to search for")
    p.add_argument("-k", type=int, default=10, help=f"results, 1 to {MAX_K} (default 10)")
    p.add_argument("--version", default=None, help="default: LATEST")
    p.add_argument("--beam", type=int, default=DEFAULT_BEAM, help="beam size (at least k)")
    p.add_argument("--dense", action="store_true", help="the dense baseline (= --path dense)")
    p.add_argument("--modality", choices=MODALITY_NAMES, default=None, help="only these items")
    p.add_argument("--source", default=None, help="only items of this source (ace sources list)")
    p.add_argument("--since", default=None, help="only items dated on or after (2024-05-01)")
    p.add_argument("--until", default=None, help="only items dated on or before (2024-05)")
    p.add_argument("--sort", choices=SORTS, default="relevance", help="result order")
    p.add_argument(
        "--keywords", action="store_true", help="also file-name and caption matches (BM25)"
    )
    add_path_option(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("versions", parents=[common], help="list published versions")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("audit", parents=[common], help="identifier diff between versions")
    p.add_argument("--from", dest="from_version", default=None, help="default: --to's parent")
    p.add_argument("--to", dest="to_version", default=None, help="default: LATEST")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("serve", parents=[common], help="the search service and web page")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", default=None, help="required for a non-loopback bind")
    p.add_argument(
        "--play-cache-mb",
        type=int,
        default=2048,
        metavar="MB",
        help="bound of the kept browser-playable renditions (default 2048)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("verify", parents=[common], help="check a version's files (sha256)")
    p.add_argument("--version", default=None, help="default: LATEST")
    p.add_argument("--all", action="store_true", help="every published version")
    p.set_defaults(func=cmd_verify)
    _add_eval(sub, common)


def _add_eval(sub, common) -> None:
    p = sub.add_parser("eval", parents=[common], help="evaluation of a version")
    p.add_argument("--version", default=None, help="default: LATEST")
    p.add_argument("--ablations", action="store_true", help="include (train if needed) ablations")
    p.add_argument(
        "--queries",
        default=None,
        metavar="FILE.jsonl",
        help='score the version on your own {"query": ..., "path": ...} lines',
    )
    add_path_option(p)
    p.set_defaults(func=cmd_eval, path=None)  # stored figures unless a path is asked for


def cmd_query(args) -> int:
    from ace_index.query.search import Searcher, SearchRequest

    request = SearchRequest.checked(
        args.text,
        args.k,
        args.path,
        args.modality,
        dense=args.dense,
        source=args.source,
        since=args.since,
        until=args.until,
        sort=args.sort,
        keywords=args.keywords,
    )
    payload = Searcher(args.store).answer(request, args.version, args.beam)
    present.emit(args, payload, present.query_results)
    return 0


def cmd_versions(args) -> int:
    from ace_index.storage.catalog.versions import list_versions
    from ace_index.storage.store import open_store

    rows = list_versions(args.store)
    pin = open_store(args.store).pin() if any(r["pinned"] for r in rows) else None
    present.emit(args, rows, lambda rs: present.versions(rs, args.store, pin))
    return 0


def cmd_audit(args) -> int:
    from ace_index.storage.build.audit import audit

    report = audit(args.store, args.from_version, args.to_version)
    present.emit(args, report, present.audit_report)
    return 0


def cmd_eval(args) -> int:
    from ace_index.storage.catalog.ablations import ablation_metrics
    from ace_index.storage.catalog.versions import version_eval

    if args.queries:
        from ace_index.query.evaluate import evaluate_query_file

        path = args.path or "auto"
        out = evaluate_query_file(args.store, args.version, args.queries, path=path)
        present.emit(args, out, present.query_file_eval)
        return 0
    out = version_eval(args.store, args.version)
    if args.path:  # the version's test queries on that path as served (kept once computed)
        from ace_index.query.evaluate import evaluate_served_path

        out["served"] = evaluate_served_path(args.store, out["version"], args.path)
    if args.ablations:
        out["ablations"] = ablation_metrics(args.store, out["version"])  # saved and reused
    else:
        out.pop("ablations", None)
    present.emit(args, out, present.served_eval)
    return 0


def cmd_verify(args) -> int:
    """Every damaged file of the version (of every version with --all); exit 3 when any."""
    from ace_index.storage.store import open_store
    from ace_index.storage.store.verify import version_report

    versions = open_store(args.store).versions() if args.all else [args.version]
    reports = [version_report(args.store, v) for v in versions]
    payload = reports if args.all else reports[0]
    present.emit(args, payload, lambda _: present.verify_reports(reports))
    if all(r["ok"] for r in reports):
        return 0
    bad = [r for r in reports if not r["ok"]]
    count = sum(len(r["damaged"]) for r in bad)
    print(
        f"ace: error: damaged store: {bad[0]['damaged'][0]}; {count} damaged file(s) in "
        f"{', '.join(r['version'] for r in bad)}; `ace rollback --store {args.store}` serves "
        "the newest version that verifies",
        file=sys.stderr,
    )
    return EXIT_DAMAGED


def cmd_serve(args) -> int:
    from ace_index.flows.serve.app import is_loopback, serve
    from ace_index.storage.store import open_store

    token = args.token or os.environ.get("ACE_SERVE_TOKEN")
    if not is_loopback(args.host) and not token:
        raise UsageError(
            f"--host {args.host} is reachable from other machines: give --token (or set "
            f"ACE_SERVE_TOKEN); without one, serve on 127.0.0.1"
        )
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1..65535, got {args.port}")
    if args.play_cache_mb < 0:
        raise UsageError(f"--play-cache-mb must be 0 or more, got {args.play_cache_mb}")
    open_store(args.store).resolve(None)  # a store with nothing to serve is an error now
    print(
        f"serving {args.store} on http://{args.host}:{args.port}/ (API docs: /docs)",
        file=sys.stderr,
    )
    serve(args.store, args.host, args.port, token, play_cache_mb=args.play_cache_mb)
    return 0
