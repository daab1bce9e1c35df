"""What the fault tests share: the CLI in-process, the one-line check and a cut MP4 (the
fixtures, a small published store to damage built once per session, are in
tests/conftest.py)."""

from __future__ import annotations

import conftest

from ace_index.flows.cli import main

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


def cut_mp4(path) -> bytes:
    """An 8-frame MP4 written at ``path`` with its index (moov) at the end, and its bytes
    without their last 200: a cut file that has no index."""
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for k in range(8):
            frame = np.full((48, 64, 3), 30 * k, np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode())
    return path.read_bytes()[:-200]
