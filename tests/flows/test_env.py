import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_default_prefect_home_is_created_per_user(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    out = subprocess.run(
        [sys.executable, "-c", "import os, flows; print(os.environ['PREFECT_HOME'])"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(tmp_path / "cache" / "ace-index" / "prefect")
    assert Path(out).is_dir()  # Prefect creates one level only; SQLite needs the folder


def test_the_console_script_exits_with_mains_code_and_flushed_output(tmp_path):
    """`ace` (flows.cli:run) skips the interpreter's module teardown: the exit code and
    everything printed must still come through."""
    run = [sys.executable, "-c", "from flows.cli import run; run()"]
    ok = subprocess.run(
        [*run, "sources", "list", "--store", str(tmp_path / "none"), "--json"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    bad = subprocess.run(
        [*run, "embed", str(tmp_path / "missing"), "--store", str(tmp_path / "s")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert (ok.returncode, bad.returncode) == (0, 2), ok.stderr + bad.stderr
    assert ok.stdout.strip().startswith("[") or ok.stdout.strip().startswith("{")
    assert "corpus directory not found" in bad.stderr
