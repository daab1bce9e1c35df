"""What the command line prints for people; ``--json`` prints the payloads as they are."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

METRICS = ("R@1", "R@5", "R@10", "MRR@10")


def emit(args, payload: Any, human: Callable[[Any], str]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(human(payload).rstrip("\n") + "\n")


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def stage_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)  # a stage line, on a terminal and off one


def tiny_encoders(r: dict) -> str:
    how = "reused" if r["reused"] else "trained"
    lines = [f"{how} the tiny encoders (they only understand the synthetic scenes world)"]
    for among in r["zero_shot"]["image"]:
        got = {m: r["zero_shot"][m][among] for m in ("image", "audio")}
        recalls = [f"{m} R@1 {g['R@1']:.2f} R@10 {g['R@10']:.2f}" for m, g in got.items()]
        held = among.removeprefix("among_")
        lines.append(f"zero-shot text->media among {held} held-out items: " + ", ".join(recalls))
    return "\n".join(lines + ["index with: ace index CORPUS " + " ".join(r["args"])])


def sample_corpus(d: dict) -> str:
    return (
        f"wrote {d['images']} images, {d['audio']} audio clips, "
        f"{d['videos']} videos ({d['captions']} captions, {d['world']} world) to {d['path']}"
    )


def embed_report(r: dict) -> str:
    mods = ", ".join(f"{m} {n}" for m, n in r["by_modality"].items()) or "none"
    lines = [
        f"{r['items']} media files: {r['ok']} embedded ({mods}), {r['failed']} failed, "
        f"{r['skipped']} non-media skipped, {r['duplicates']} duplicate paths",
        f"{r['shards']} shard(s), {r['shards_computed']} computed in this run "
        f"({r['embedded']} files); {r['seconds']:.1f} s, {r['items_per_s']} items/s",
    ]
    for err in r["caption_errors"][:10]:
        lines.append(f"warning: {err}")
    return "\n".join(lines + failed_lines(r.get("failed_items") or []))


def failed_lines(failed: list[dict], limit: int = 10) -> list[str]:
    names = [f"{f.get('location') or f['path']}: {f['error']}" for f in failed]
    return listed("failed", names, limit)


FILES_SHOWN = 20  # files of each kind a build summary or an audit names


def listed(what: str, names: list[str], limit: int = FILES_SHOWN) -> list[str]:
    """``  what: name`` lines, the first ``limit`` of them, then how many more."""
    lines = [f"  {what}: {n}" for n in names[:limit]]
    if len(names) > limit:
        lines.append(f"  ... and {len(names) - limit} more {what} files (--json lists all)")
    return lines


def publish_report(r: dict) -> str:
    if r.get("pinned"):  # a flow run no person started, while a rollback pins LATEST
        return "nothing published: " + pinned_line(r["pin"])
    if not r.get("published", True):
        latest, took = r["version"], r["seconds"]
        return f"nothing changed: nothing published, LATEST stays {latest} ({took:.1f} s)"
    c, d = r["items"], r["id_diff"]
    reused = (
        f"; reused {r['reused_from']} (same embeddings, captions, config and code: IDs and "
        f"retriever taken from it, nothing trained)"
        if r.get("reused_from")
        else ""
    )
    lines = [
        f"published {r['version']} ({r['operation']}, parent {r['parent_version'] or '-'}) "
        f"in {r['seconds']:.1f} s{reused}",
        f"items: {c['items']} ({c['ok']} ok, {c['failed']} failed); " + _ids_line(r["ids"]),
        f"ID diff vs parent: {d['added']} added, {d['removed']} removed, {d['changed']} changed, "
        f"{d['unchanged']} unchanged" + _why_ids(r["ids"]),
    ]
    files = r.get("files") or {}  # the CLI's (storage/build/audit.py run_files)
    lines += listed("added", files.get("added") or [])
    vanished = [f"{x['source_id']}:{x['path']}" for x in r.get("removed_items") or []]
    lines += listed("removed", files.get("removed", vanished))
    lines += failed_lines(r.get("failed_items") or [], FILES_SHOWN)
    return "\n".join([*lines, eval_table(r["eval"])])


def _why_ids(ids: dict) -> str:
    from ace_index.storage.build.audit import why_ids

    return f" ({why_ids(ids['id_policy'])})" if ids.get("id_policy") else ""


def _ids_line(ids: dict) -> str:
    return (
        f"IDs: k={ids['k']}, {ids['levels']}x{ids['codebook_size']} codes, collision rate "
        f"{ids['collision_rate']} (faiss RQ {ids.get('faiss_rq_collision_rate')}), "
        f"rel. error {ids.get('rel_recon_error')} (faiss RQ {ids.get('faiss_rq_rel_recon_error')})"
    )


def eval_table(e: dict) -> str:
    rows = []
    for name in ("generative", "dense"):
        if e.get(name):
            rows.append([name] + [fmt(e[name].get(k)) for k in METRICS])
    for name, m in (e.get("ablations") or {}).items():
        rows.append([f"ablation: {name}"] + [fmt(m.get(k)) for k in METRICS])
    for name, m in (e.get("subsets") or {}).items():
        rows.append([f"generative, {name.replace('_', ' ')}"] + [fmt(m.get(k)) for k in METRICS])
    q = e.get("queries", {})
    head = (
        f"evaluation ({e.get('protocol', 'seen')} items; {q.get('test', 0)} test / "
        f"{q.get('val', 0)} val queries)"
    )
    return head + "\n" + table(rows, ["model"] + list(METRICS))


def query_results(p: dict) -> str:
    rows = [
        [
            n + 1,
            fmt(r.get("relevance")),
            f"{r['score']:.3f}",
            r["modality"],
            r["sid"],
            r["location"] or r["path"],
        ]
        for n, r in enumerate(p["results"])
    ]
    path = p.get("path")
    how = f"{path} path" if path == p["mode"] else p["mode"] + (f", {path} path" if path else "")
    head = f"{how} results for {p['query']!r} ({p['version']})"
    if p.get("no_good_match"):
        head += "\nno good match: no result reaches this version's relevance threshold"
    if p.get("relevance_calibrated") is False and p["results"]:
        head += "\nrelevance uncalibrated (no validation queries): the model's own probability"
    header = ["#", "relevance", "score", "modality", "semantic id", "location"]
    text = head + "\n" + table(rows, header)
    if "keyword_results" in p:
        found = [
            [n + 1, f"{r['score']:.3f}", r["modality"], r["location"] or r["path"]]
            for n, r in enumerate(p["keyword_results"])
        ]
        text += "\nfile-name and caption matches (BM25):\n" + (
            table(found, ["#", "bm25", "modality", "location"]) if found else "  none"
        )
    return text


def versions(rows: list[dict], store: str, pin: dict | None = None) -> str:
    """The versions table; ``pin``: the rollback's pin in force (its version marked, its
    when and why below the table)."""
    if not rows:
        return f"no versions in {store}"
    header = [
        "version",
        "parent",
        "operation",
        "created",
        "items",
        "failed",
        "served R@1",
        "gen R@1",
        "dense R@1",
        "sources",
    ]
    cells = [
        [
            ("* " if r["latest"] else "  ") + r["version"] + (" pinned" if r.get("pinned") else ""),
            r["parent_version"] or "-",
            r["operation"],
            r["created_at"],
            r["items"],
            r["failed"],
            _served_cell(r.get("served")),
            fmt(r["eval"]["generative"]),
            fmt(r["eval"]["dense"]),
            ", ".join(r["sources"]) or "-",
        ]
        for r in rows
    ]
    if pin is None:
        return table(cells, header)
    return table(cells, header) + "\n" + pinned_line(pin)


def pinned_line(pin: dict) -> str:
    return (
        f"{pin['version']} pinned at {pin['at']} ({pin['reason']}): scheduled and triggered runs "
        "publish nothing until `ace rollback --unpin` or an explicit `ace index` / `ace ingest`"
    )


def _served_cell(served: dict | None) -> str:
    """The served path's test R@1 and the path (``0.812 both``); - when not evaluated."""
    return f"{fmt(served['R@1'])} {served['path']}" if served else "-"


def audit_report(d: dict) -> str:
    moves = [m for m in d.get("moves", []) if m.get("operation") == "rollback"]
    return (
        (
            f"{d['from']} -> {d['to']}: {d['added']} added, {d['removed']} "
            f"removed, {d['changed']} changed, {d['unchanged']} unchanged"
            + (f"\n  why: {d['why']}" if d.get("why") else "")
        )
        + "".join(
            f"\n  changed {c.get('file') or c['item_id'][:12]}: {c['from']} -> {c['to']}"
            for c in d["changed_items"][:FILES_SHOWN]
        )
        + "".join(
            "\n" + line
            for what in ("added", "removed")
            for line in listed(what, [x.get("file") or x["item_id"] for x in d[f"{what}_items"]])
        )
        + "".join(
            f"\n  rollback at {m['at']}: {m.get('previous') or '-'} -> {m['latest']}" for m in moves
        )
    )


def served_eval(o: dict) -> str:
    """`ace eval --path P`: the stored table, then P as served on the same test queries."""
    text = f"{o['version']}: " + eval_table(o)
    s = o.get("served")
    if not s:
        return text
    rows = [[f"served ({s['path']})", *(s["served"].get(m) for m in METRICS)]]
    rows += method_rows(s, ("generative", "text_tower_dense", "dense", "bm25"))
    head = f"\nas served, on the version's {s['queries']} test queries ({s['protocol']}):"
    return text + head + "\n" + table(rows, ["path", *METRICS])


def method_rows(o: dict, names) -> list[list]:
    """One table row per method the evaluation has (a path's name beside generative)."""
    label = {
        "auto": f"auto ({o.get('path')})",
        "generative": f"generative ({o.get('generative_path')})",
    }
    return [[label.get(n, n), *(o[n].get(m) for m in METRICS)] for n in names if o.get(n)]


def query_file_eval(o: dict) -> str:
    rows = method_rows(o, ("auto", "generative", "text_tower_dense", "dense", "bm25"))
    head = f"{o['version']}: {o['queries']} queries"
    if o["unknown_items"]:
        head += f"; {len(o['unknown_items'])} named items not in the index were skipped"
    return head + "\n" + table(rows, ["model", *METRICS])


def verify_reports(reports: list[dict]) -> str:
    lines = []
    for r in reports:
        if r["ok"]:
            lines.append(
                f"{r['version']}: {r['files']} files ({r['bytes']} bytes) match the manifest"
            )
        else:
            lines.append(f"{r['version']}: DAMAGED, {len(r['damaged'])} file(s):")
            lines += [f"  {d}" for d in r["damaged"]]
    return "\n".join(lines)


def imported_captions(d: dict) -> str:
    return (
        f"wrote {d['items']} items ({d['captions']} captions; splits "
        + ", ".join(f"{k} {v}" for k, v in sorted(d["splits"].items()))
        + f") to {d['out']}"
    )
