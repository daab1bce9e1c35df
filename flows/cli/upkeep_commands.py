"""Store upkeep: `ace rollback` and `ace prune`."""

from __future__ import annotations

from flows.cli import present


def add_commands(sub, common) -> None:
    p = sub.add_parser(
        "rollback",
        parents=[common],
        help="serve an older version again, or repair a damaged LATEST",
    )
    p.add_argument(
        "version",
        nargs="?",
        default=None,
        help="the version to serve (default: the newest older version that verifies; with "
        "LATEST damaged, the newest version that verifies)",
    )
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("prune", parents=[common], help="delete old versions (never the served one)")
    p.add_argument("--keep", type=int, required=True, help="how many newest versions to keep")
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be deleted, delete nothing"
    )
    p.set_defaults(func=cmd_prune)


def cmd_rollback(args) -> int:
    from storage.store.upkeep import rollback

    out = rollback(args.store, args.version)
    present.emit(args, out, _rolled_back)
    return 0


def _rolled_back(o: dict) -> str:
    lines = [f"skipped {s['version']}: {s['damaged'][0]}" for s in o["skipped"]]
    lines.append(f"LATEST is now {o['latest']} (was {o['previous'] or 'unreadable'})")
    return "\n".join(lines)


def cmd_prune(args) -> int:
    from storage.store.upkeep import prune

    out = prune(args.store, args.keep, args.dry_run)
    present.emit(args, out, _pruned)
    return 0


def _pruned(o: dict) -> str:
    verb = "would delete" if o["dry_run"] else "deleted"
    which = f": {', '.join(o['deleted'])}" if o["deleted"] else ""
    line = f"{verb} {len(o['deleted'])} version(s){which}; kept {', '.join(o['kept'])}"
    if o["reclaimed"]:  # what a killed prune left in versions/
        line += f"\n{verb} {len(o['reclaimed'])} leftover folder(s): {', '.join(o['reclaimed'])}"
    return line
