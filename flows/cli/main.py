"""`ace`: the parser of every command group, error handling and exit codes."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import shutil
import sys
import threading
import time

from ace_index.flows import embedded_api
from ace_index.flows.cli import (
    build_commands,
    corpus_commands,
    interrupts,
    read_commands,
    upkeep_commands,
)
from ace_index.flows.cli.console import configure_logging, filter_prefect_console
from ace_index.flows.cli.options import EXIT_DAMAGED, Parser, UsageError
from ace_index.tasks import _env


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--store", default="./ace-store", help="index store (default %(default)s)")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = Parser(prog="ace", description="ACE generative cross-modal index")
    parser.add_argument("--version", action="version", version=f"ace {_package_version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for group in (corpus_commands, build_commands, read_commands, upkeep_commands):
        group.add_commands(sub, common)
    parser.commands = sub.choices  # name -> its parser (its usage for an unknown option)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Arguments, with an unknown option reported by its subcommand's parser (its usage,
    not the top-level one)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


# commands that read an existing store: a missing one is the same error (exit 2) in each
STORE_READERS = {"versions", "audit", "verify", "eval", "query", "serve", "rollback", "prune"}


def _require_store(args) -> None:
    reads = args.command in STORE_READERS or (args.command == "sources" and args.action != "add")
    if reads and not os.path.isdir(args.store):
        raise UsageError(
            f"no store at {args.store} (build one with `ace index FOLDER --store ...`)"
        )
    if getattr(args, "precheck", None):
        args.precheck(args)  # cheap checks of the input, before the lock, Prefect or torch


def _package_version() -> str:
    from ace_core import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    _env.apply()  # the process environment, before prefect or a hub library is imported
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except SystemExit as e:  # argparse already printed usage and the reason
        return 2 if e.code not in (0, None) else 0
    args.started = started
    configure_logging(args.verbose)
    handles_signals = argv is None  # the `ace` process itself, not a caller's (a test's)
    if handles_signals:
        interrupts.install(f"ace {args.command}")
    try:
        _require_store(args)
        with _build_lock(args):  # the first thing a build takes: a second one fails at once
            if args.command in build_commands.FLOW_COMMANDS:
                embedded_api.spawn_if_unconfigured()  # starts while the command imports models
                filter_prefect_console(args.verbose)
                if handles_signals:
                    return interrupts.run_off_main_thread(lambda: args.func(args))
            return args.func(args)
    except KeyboardInterrupt:
        print("ace: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every failure ends in one line
        return _report_failure(e)


def _build_lock(args):
    """The store's build lock for the commands that publish (index, ingest), else nothing."""
    if args.command not in build_commands.BUILD_COMMANDS:
        return contextlib.nullcontext()
    from ace_index.storage.store import open_store

    return open_store(args.store).build_lock(f"ace {args.command}")


def _report_failure(e: Exception) -> int:
    """One line on stderr and the exit code: 3 a damaged store, 2 the user's input or the
    machine's (disk full, permissions), 1 anything else (details with -v)."""
    from ace_index.storage.store import DamagedStoreError

    if isinstance(e, DamagedStoreError):
        print(f"ace: {e}", file=sys.stderr)
        return EXIT_DAMAGED
    if isinstance(e, (*_user_errors(), OSError, shutil.Error)):
        print(f"ace: error: {one_line(e)}", file=sys.stderr)
        return 2
    logging.getLogger("ace").debug("internal failure", exc_info=True)
    print(
        f"ace: internal error: {type(e).__name__}: {e} (run with -v for details)",
        file=sys.stderr,
    )
    return 1


def one_line(e: BaseException) -> str:
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
    from ace_index.storage.store import StoreError

    return (UsageError, AceInputError, StoreError, FileNotFoundError, NotADirectoryError)


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
