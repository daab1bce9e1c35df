"""Prefect's embedded API for one `ace` command, spawned before the command's heavy imports.

Without an API URL, Prefect starts its ephemeral API (a uvicorn subprocess) at the first
client call. In a flow command that call comes after ~7 s of imports (prefect, torch,
open_clip) and model loading, and Prefect then waits ~4.5 s for the server. The command line
spawns the same server first (`spawn`, before prefect is imported) so that it starts while
the imports run, and waits for it only before the first flow (`adopt`).

It is used only where Prefect would have started its own: no API URL configured (environment,
profile or prefect.toml) and ephemeral mode allowed. Otherwise the spawned server is stopped
unused. The server is stopped when the command exits, and dies with it on Linux.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

logger = logging.getLogger("ace.api")

PORT_IN_USE = 3  # uvicorn's exit status when it cannot bind


class EmbeddedApi:
    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.spawned_at = 0.0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def spawn(self) -> None:
        self.port = _free_port()
        self.spawned_at = time.perf_counter()
        self.process = subprocess.Popen(
            _uvicorn_argv(self.port),
            env={
                **os.environ,
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
            },
            preexec_fn=_die_with_parent_hook(),
        )

    def adopt(self) -> None:
        """Point Prefect at this server once it answers, unless Prefect has an API of its own
        (then stop it). Call after prefect is imported, before the first flow."""
        from prefect.context import refresh_global_settings_context
        from prefect.settings import get_current_settings

        if not _prefect_would_start_one():
            self.stop()
            return
        self._wait_healthy(get_current_settings().server.ephemeral.startup_timeout_seconds)
        os.environ["PREFECT_API_URL"] = self.api_url
        os.environ.setdefault("PREFECT_UI_URL", "")  # it serves no UI: no "View at" links
        refresh_global_settings_context()
        logger.debug(
            "Prefect's embedded API answers on %s, %.1f s after it was spawned",
            self.api_url,
            time.perf_counter() - self.spawned_at,
        )

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.process.poll() if self.process else None
            if status == PORT_IN_USE:  # another process took the port since we picked it
                self.spawn()
            elif status is not None:
                raise RuntimeError(f"Prefect's embedded API server exited with status {status}")
            elif _answers(f"{self.api_url}/health"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Prefect's embedded API did not start within {timeout_s} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_API: EmbeddedApi | None = None


def spawn_if_unconfigured() -> None:
    """Spawn the server unless PREFECT_API_URL is set in the environment, or (when prefect is
    already imported, as in a test harness) Prefect has its API. Imports nothing itself."""
    global _API
    if _API is not None or os.environ.get("PREFECT_API_URL"):
        return
    if "prefect.context" in sys.modules and not _prefect_would_start_one():
        return
    _API = EmbeddedApi()
    _API.spawn()
    atexit.register(_API.stop)


def adopt_if_spawned() -> None:
    """Adopt the spawned server (if any), then say in one stage line which API this command's
    runs and artifacts go to: the configured one (PREFECT_API_URL, a profile, prefect.toml)
    or the embedded one, which ends with the command."""
    if _API is not None and _API.process is not None:
        _API.adopt()
    print(api_line(), file=sys.stderr)


def api_line() -> str:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if _API is not None and _API.process is not None and url == _API.api_url:
        return (
            "Prefect API: embedded for this command (set PREFECT_API_URL to report to a "
            "server)"
        )
    if url:
        return f"Prefect API: {url} (configured): this run and its artifacts are kept there"
    return "Prefect API: Prefect's ephemeral one for this command"


def _prefect_would_start_one() -> bool:
    """Prefect's own rule for its ephemeral server: no API URL, ephemeral mode allowed."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    return not settings.api.url and settings.server.ephemeral.enabled


def _uvicorn_argv(port: int) -> list[str]:
    spec = importlib.util.find_spec("prefect")  # its location only; prefect is not imported
    app_dir = Path(spec.origin).parent.parent if spec and spec.origin else Path.cwd()
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(app_dir),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _die_with_parent_hook():
    """Linux: a pre-exec hook making the child get SIGTERM when the `ace` process dies, even
    by SIGKILL (PR_SET_PDEATHSIG). libc is resolved here, in the parent: the hook only calls."""
    if sys.platform != "linux":
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's

    return hook
