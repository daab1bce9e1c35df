"""Small commands answer fast and alike: read commands start no Prefect API and answer in
well under a second of work; a missing store is exit 2 everywhere; an unknown option shows
its subcommand's usage; a missing weights file or an empty folder is refused before any work
and registers nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import ace, one_line_error

ROOT = Path(__file__).resolve().parents[2]


def _ace(*argv: str) -> tuple[int, str, str, float]:
    """`python -m flows.cli` in a fresh process: (exit code, stdout, stderr, seconds)."""
    env = {**os.environ, "PREFECT_API_URL": ""}  # a command that needed the API would start one
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "ace_index.flows.cli", *argv], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t


@pytest.mark.parametrize(
    "argv", [["versions"], ["sources", "list"], ["audit"], ["verify"], ["eval"]]
)
def test_read_commands_answer_in_about_a_second_without_prefect(store, argv):
    code, out, err, took = _ace(*argv, "--store", str(store), "--json")
    assert code in (0, 2), err  # audit of a first version has no parent: exit 2, one line
    assert took < 3.0, took  # a bare interpreter with pyarrow: about 0.3 s here
    assert "prefect" not in err.lower()


@pytest.mark.parametrize(
    "argv", [["versions"], ["sources", "list"], ["audit"], ["verify"], ["eval"], ["query", "x"]]
)
def test_a_missing_store_is_the_same_error_everywhere(tmp_path, capsys, argv):
    code, out, err = ace(capsys, *argv, "--store", str(tmp_path / "nope"))
    assert code == 2 and out == ""
    one_line_error(err, "no store at")
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(
    "argv", [["eval", "--version", "²"], ["query", "x", "--version", "١"], ["rollback", "²"]]
)
def test_a_version_in_other_digits_is_a_usage_error(store, capsys, argv):
    code, out, err = ace(capsys, *argv, "--store", str(store))
    assert code == 2 and out == ""
    one_line_error(err, "a version is a number")


def test_an_unknown_option_shows_the_subcommands_usage(capsys):
    code, _, err = ace(capsys, "index", "--bogus", "x")
    assert code == 2 and err.startswith("usage: ace index") and "--bogus" in err


def test_a_missing_weights_file_is_refused_at_once(tmp_path, built):
    out = tmp_path / "s"
    code, _, err, took = _ace("index", str(built / "corpus"), "--store", str(out),
                              "--image-weights", str(tmp_path / "nope.pt"))  # fmt: skip
    assert code == 2 and "file not found" in err and took < 3.0
    assert not out.exists()


def test_an_empty_folder_says_so_and_registers_nothing(store, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "docs").mkdir(parents=True)
    (empty / "docs" / "notes.txt").write_text("not media")
    before = (store / "sources.json").read_text()
    code, _, err = ace(capsys, "ingest", str(empty), "--store", str(store))
    assert code == 2 and "no media files found" in one_line_error(err)
    assert (store / "sources.json").read_text() == before
    fresh = tmp_path / "fresh"
    code, _, err = ace(capsys, "index", str(empty), "--store", str(fresh), "--json")
    assert code == 2 and "no media files found" in one_line_error(err, "notes.txt")
    assert not (fresh / "sources.json").exists()
    assert json.loads((store / "sources.json").read_text())  # the store is intact


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_ends_a_build_at_once_and_leaves_nothing_behind(built, tmp_path, sig):
    from ace_index.flows.cli.interrupts import descendants

    out = tmp_path / "s"
    argv = ["index", str(built / "corpus"), "--store", str(out), "--config",
            str(built / "fast.json")]  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": ""}  # the command spawns its own API: a child
    p = subprocess.Popen([sys.executable, "-m", "ace_index.flows.cli", *argv], cwd=ROOT, env=env,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen = []
    for line in p.stderr:  # until the run is at work (its API child up, a stage line out)
        seen.append(line)
        if "discovered" in line or "embedding" in line:
            break
    children = descendants(p.pid)
    assert children, "".join(seen)
    t = time.perf_counter()
    p.send_signal(sig)
    rest = p.stderr.read()
    code = p.wait(timeout=10)
    assert time.perf_counter() - t < 5.0
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    last = rest.strip().splitlines()[-1]
    assert last.startswith("ace: ace index interrupted") and "Traceback" not in rest, rest
    time.sleep(0.5)
    assert not [c for c in children if _running(c)]  # the embedded API included
    assert not (out / "LATEST").exists() and not list(out.glob("versions/v*"))


@pytest.mark.slow  # a Dask cluster's start-up: over 30 s here
def test_a_ctrl_c_ends_a_dask_build_with_one_line_and_no_worker_left(built, tmp_path):
    """A terminal's Ctrl-C goes to the whole process group, the Dask workers included: they
    died of it, the nanny restarted them and multiprocessing's resource tracker printed about
    25 lines of tracebacks after the command's own line (issue 43)."""
    from ace_index.flows.cli.interrupts import descendants

    out = tmp_path / "s"
    argv = ["index", str(built / "corpus"), "--store", str(out), "--config",
            str(built / "fast.json"), "--dask-local", "2"]  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": ""}
    p = subprocess.Popen([sys.executable, "-m", "ace_index.flows.cli", *argv], cwd=ROOT, env=env,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    seen = []
    for line in p.stderr:  # until a worker is at work (it logs the shard it embeds)
        seen.append(line)
        if "embedding" in line:
            break
    children = descendants(p.pid)
    workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert workers, "".join(seen)
    t = time.perf_counter()
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the group, not one pid
    rest = p.stderr.read()
    code = p.wait(timeout=10)
    assert time.perf_counter() - t < 5.0
    assert code == 130
    last = rest.strip().splitlines()[-1]
    assert last.startswith("ace: ace index interrupted") and "Traceback" not in rest, rest
    assert "distributed" not in rest and "resource_tracker" not in rest, rest
    time.sleep(0.5)
    assert not [c for c in children + descendants(p.pid) if _running(c)]
    assert not (out / "LATEST").exists() and not list(out.glob("versions/v*"))


def test_a_flow_run_by_a_command_leaves_its_signal_handlers_in_place(prefect_harness):
    """Prefect's SIGTERM bridge (installed by a flow run in the main thread) turned SIGTERM
    into an exception that could end the command as exit 1 with a traceback."""
    from prefect import flow

    from ace_index.flows.cli.interrupts import run_off_main_thread

    def ours(_signum, _frame):
        raise AssertionError("not called")

    @flow
    def handler_seen_by_a_flow() -> object:
        return signal.getsignal(signal.SIGTERM)

    before = signal.signal(signal.SIGTERM, ours)
    try:
        assert run_off_main_thread(handler_seen_by_a_flow) is ours
        assert handler_seen_by_a_flow() is not ours  # the bridge a main-thread run installs
        with pytest.raises(ZeroDivisionError):
            run_off_main_thread(lambda: 1 // 0)
    finally:
        signal.signal(signal.SIGTERM, before)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return b") Z " not in f.read(256)
    except OSError:
        return False


def test_a_build_that_trains_on_no_caption_says_so(built, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(built / "corpus", corpus)
    lines = (corpus / "captions.jsonl").read_text().splitlines()
    held_out = [json.dumps({**json.loads(line), "split": "test"}) for line in lines if line]
    (corpus / "captions.jsonl").write_text("\n".join(held_out) + "\n")
    code, out, err = ace(capsys, "index", str(corpus), "--store", str(tmp_path / "s"),
                         "--config", str(built / "fast.json"), "--json")  # fmt: skip
    assert code == 0, err[-2000:]
    warning = [line for line in err.splitlines() if "no caption trains this index" in line]
    assert len(warning) == 1 and "in test" in warning[0] and "=train" in warning[0]
    assert json.loads(out)["eval"]["queries"]["train"] == 0


def test_eval_of_a_path_scores_it_as_served_on_the_versions_test_queries(store, capsys):
    code, out, err = ace(capsys, "eval", "--store", str(store), "--json")
    stored = json.loads(out)
    kept = stored["served"]  # the build evaluated the path it serves (no model loaded here)
    assert code == 0 and kept["path"] == "fused" and kept["queries"] == stored["queries"]["test"]
    code, out, _ = ace(capsys, "versions", "--store", str(store), "--json")
    assert json.loads(out)[-1]["served"] == {"path": "fused", "R@1": kept["served"]["R@1"]}
    for path in ("fused", "captions"):  # random towers here: fused weighs the caption side
        code, out, err = ace(capsys, "eval", "--path", path, "--store", str(store), "--json")
        assert code == 0, err[-2000:]
        served = json.loads(out)["served"]
        assert served["path"] == path and served["queries"] == stored["queries"]["test"]
        assert 0 <= served["served"]["R@10"] <= 1 and served["dense"]["R@1"] is not None
        assert served["generative_path"] == "captions" and served["bm25"]["R@1"] is not None
        assert served["text_tower_dense"] is None  # random-weight towers are no baseline
        assert (store / "evaluations" / f"{stored['version']}-{path}.json").exists()
    fresh = json.loads((store / "evaluations" / f"{stored['version']}-fused.json").read_text())
    assert fresh["served"] == kept["served"]  # computed afresh for the path auto serves here
    saved = store / "evaluations" / f"{stored['version']}-captions.json"
    assert json.loads(saved.read_text())["dense"] == stored["dense"]  # the build's test queries
