"""What the fault tests share: the CLI in-process and the one-line check (the fixtures, a
small published store to damage built once per session, are in tests/conftest.py)."""

from __future__ import annotations

import conftest

from flows.cli import main

FAST = conftest.FAULTS_FAST  # the config of the shared store's build


def ace(capsys, *argv) -> tuple[int, str, str]:
    code = main([*argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str, *needles: str) -> str:
    """The CLI's last stderr line is its one-line reason (warnings may precede it)."""
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("ace: "), err[-2000:]
    for n in needles:
        assert n in last, last
    return last
