"""Store upkeep: `ace rollback` (and `--unpin`) and `ace prune`."""

from __future__ import annotations

from ace_index.flows.cli import present
from ace_index.flows.cli.options import UsageError


def add_commands(sub, common) -> None:
    p = sub.add_parser(
        "rollback",
        parents=[common],
        help="serve an older version again and pin it, or repair a damaged LATEST",
    )
    p.add_argument(
        "version",
        nargs="?",
        default=None,
        help="the version to serve (default: the newest older version that verifies; with "
        "LATEST damaged, the newest version that verifies)",
    )
    p.add_argument("--reason", help="why, recorded with the pin (shown by `ace versions`)")
    p.add_argument(
        "--unpin",
        action="store_true",
        help="lift a rollback's pin: scheduled and triggered runs publish again (LATEST stays)",
    )
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("prune", parents=[common], help="delete old versions (never the served one)")
    p.add_argument("--keep", type=int, required=True, help="how many newest versions to keep")
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be deleted, delete nothing"
    )
    p.set_defaults(func=cmd_prune)


def cmd_rollback(args) -> int:
    from ace_index.storage.store.upkeep import rollback, unpin

    if args.unpin:
        if args.version is not None or args.reason is not None:
            raise UsageError("--unpin takes no version and no --reason")
        present.emit(args, unpin(args.store), _unpinned)
        return 0
    out = rollback(args.store, args.version, args.reason)
    present.emit(args, out, _rolled_back)
    return 0


def _rolled_back(o: dict) -> str:
    lines = [f"skipped {s['version']}: {s['damaged'][0]}" for s in o["skipped"]]
    lines.append(
        f"LATEST is now {o['latest']} (was {o['previous'] or 'unreadable'}), pinned: scheduled "
        "and triggered runs publish nothing until `ace rollback --unpin` or an explicit "
        "`ace index` / `ace ingest`"
    )
    return "\n".join(lines)


def _unpinned(o: dict) -> str:
    pin = o["unpinned"]
    if pin is None:
        return f"no pin: nothing to lift (LATEST is {o['latest'] or 'unreadable'})"
    return (
        f"lifted the pin on {pin['version'] or 'an unreadable PIN'}: scheduled and triggered "
        f"runs publish again (LATEST stays {o['latest'] or 'unreadable'})"
    )


def cmd_prune(args) -> int:
    from ace_index.storage.store.upkeep import prune

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
