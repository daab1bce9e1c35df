"""Every bench runs at its smallest size: ``python -m bench NAME *SMOKE`` in a fresh process
in a temporary folder (its working folder and TMPDIR), and prints its figures. Every module of
bench/ but the helpers is a bench with a ``main()`` and a ``SMOKE`` argv (bench/__init__.py).

In SMOKE, ``{corpus}`` is a small captioned scenes-world corpus with its embeddings kept and
``{store}`` a small store with an index and an ingest on top of it (tiny aligned encoders).
Only the quickest run by default (about 50 s together on 2 busy cores); the rest are slow."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
TINY = ROOT / "models" / "tiny"
HELPERS = {"__init__", "__main__", "timing", "curve_hook"}
QUICK = set(
    "coco_corpus decoder_step flat_blas id_drift id_sizes ids ivf_codes page_api "
    "retrieval tiny_binding world_distinct".split()
)
NEEDS = {  # what a bench reads that a checkout may lack: skipped without it
    "coco_corpus": ROOT.parent / "shared" / "realdata" / "coco-mini",
    "clip_retrieval": ROOT / ".bench-venvs" / "clip-retrieval" / "bin" / "clip-retrieval",
}
BROKEN: dict[str, str] = {}  # bench -> why its smoke run is expected to fail
PRINTS = {  # a line of its figures: the bench ran to its end
    "busy": r"\| 1 thread \(OMP_NUM_THREADS=1\) \| [\d.]+ \| [\d.]+ \|",
    "clip_retrieval": r"embedding agreement over \d+ images: median cosine [\d.]+",
    "coco_corpus": r"\d+ photos, \d+ captions -> ",
    "commands": r"\| `ace query 'three red circles'` \| [\d.]+ \|",
    "decoder_variants": r"\| generation \(merged\), leaf [\d.]+ \| [\d.]+ \| [\d.]+ \|",
    "dense_budget": r"\| 4 examples/item.* \| [\d,]+ \| \d+ \| [\d.]+ \[",
    "decoder_step": r"train_step_ms: [\d.]+\n(.*\n)*beam_search_ms: [\d.]+",
    "embed": r"memory ratio 10x corpus / 1x corpus: [\d.]+",
    "faults": r"fault matrix: \d+ of \d+ cases held",
    "flat_blas": r"\| 1,000 \| 32 \| [\d.]+ \| [\d.]+ \|",
    "forgetting": r"\| defaults \| [\d.]+ \| [\d.]+ \|",
    "fused_cost": r"auto: 100 / 100 items = [\d.]+x",
    "fused_protocols": r"curve unseen seed 0: epoch 1(.*\n)*\| auto \(fused\) \| [\d.]+ \[",
    "fusion_fit_proxy": r"unseen \(\d+ queries\): R@1 fused [\d.]+",
    "gpu_projection": r"\| 1,000 \| [\d,.]+ \| shared cores \| [\d,.]+ ",
    "id_drift": r"\| corpus replaced by unseen kinds \| [\d.]+ \|",
    "id_sizes": r"\| topic mixture \| 50 \| \d+ \| \d+ \| [\d.]+ \|",
    "ids": r"\| 300 \| \d+ \| [\d.]+ \| [\d.]+ \|",
    "ingest_zero_shot": r"\| new, caption-less \| \d+ \| auto \(\w+\) \| [\d.]+ \|",
    "ivf_codes": r"8-bit codes \+ exact re-score: 2,000 items.* recall@10 [\d.]+",
    "ivf_lists": r"audio: \d+ items, \d+ lists x 4 probes: recall@10 [\d.]+",
    "orchestration": r"\| re-index with nothing changed / first index \| [\d.]+ / [\d.]+ = ",
    "page_api": r"relevance calibration on 512 validation queries x 10 results: [\d.]+ ms",
    "protocols": r"\*\*caption-less\*\*(.*\n)*\| generative \(zero-shot path\) \| [\d.]+ \|",
    "query_parity": r"\| api \| \d+ \| [1-9]\d* \| \d+ \|(.*\n)*\d+ of \d+ answers differ",
    "relevance_order": r"\| v000002 \| zero-shot \| score \| \d+ \| [\d.]+ \|",
    "retrieval": r"\| 1,000 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|",
    "scale": r"ingest of 1 items into 100: [\d.]+ s",
    "serve": r"\| 100 \| auto \| 1 \| [\d.]+ \|(.*\n)*`ace query` per call .*: [\d.]+ s",
    "service_load": r"\| stock \| 4 \|(.*\n)*\d+ hostile uploads at once .*RSS at rest \d+ MB",
    "step_cost": r"\| corpus \| \d+ \| float32 \| [\d.]+ \| [\d.]+ \|",
    "text_precision": r"\| bfloat16 \| [\d.]+ \| [\d.]+x \| [\d.]+ \|(.*\n)*.*cosine min [\d.]+",
    "tiny_binding": r"\| presence: a shape not in the picture \| \d+ \| [\d.]+ \|",
    "train_workers": r"\| 2 \| [\d.]+ \| [\d,]+ \| [\d.]+x \| [\d.]+ \[",
    "uncaptioned_fusion": r"\| the build's fit \(blinded\), served \| [\d./]+ \| [\d./]+ \| "
    r"held-test R@1 [\d.]+",
    "world_distinct": r"\| video \| 100 \| \d+ \| \d+ \|",
    "zero_shot_diagnosis": r"zero-shot R@1 [\d.]+, towers R@1 [\d.]+",
}
SAMPLE_FOLDERS = {"corpus": (7, 12, 6, 2), "batch": (8, 3, 1, 1)}  # seed, images, audio, videos
FAST_INDEX = {
    "train": {"epochs": 2, "eval_every": 1, "examples_per_item": None, "dense": {"epochs": 2}},
    "ids": {"rqvae": {"max_epochs": 3}},
    "ingest": {"epochs": 1, "eval_every": 1},
}


def bench_modules() -> list[str]:
    return sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in HELPERS)


def module_tree(name: str) -> ast.Module:
    return ast.parse((BENCH / f"{name}.py").read_text())


def smoke_argv(tree: ast.Module) -> list[str] | None:
    """The module's top-level ``SMOKE = [...]`` (None where it has none)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and assigned_names(node) == ["SMOKE"]:
            return ast.literal_eval(node.value)
    return None


def assigned_names(node: ast.Assign) -> list[str | None]:
    return [getattr(target, "id", None) for target in node.targets]


def defines_main(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


def bench_env(tmp: Path) -> dict[str, str]:
    """The repository importable (bench is not installed), temporary files under ``tmp``, and
    one thread: at these sizes two threads mostly spin-wait on a busy machine."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGV`` in ``cwd`` (also its TMPDIR), output captured, 15 minutes at most."""
    env = bench_env(cwd)
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def checked(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{tail}"
    return proc


@pytest.fixture(scope="session")
def kept_corpus(tmp_path_factory) -> Path:
    """88 scenes-world items (48 images, 32 audio, 8 videos) with captions and their tiny
    encoders' embeddings kept (embeddings.npz), as ``fused_protocols.py --corpus`` keeps them."""
    work = tmp_path_factory.mktemp("bench-corpus")
    code = (
        "import sys\nfrom pathlib import Path\nfrom ace_core.world import write_world_corpus\n"
        "from bench.fused_protocols import embedded\nout = Path(sys.argv[1])\n"
        "write_world_corpus(out, {'image': 48, 'audio': 32, 'video': 8}, seed=4242)\n"
        "embedded(out, keep=True)\n"
    )
    checked(run(["-c", code, str(work / "corpus")], work))
    return work / "corpus"


@pytest.fixture(scope="session")
def two_version_store(tmp_path_factory) -> Path:
    """A store of 20 sample items (v000001) and an ingest of 5 more (v000002), the tiny
    aligned encoders, a few epochs of training."""
    from ace_core.tiny_encoders import index_args

    work = tmp_path_factory.mktemp("bench-store")
    (work / "fast.json").write_text(json.dumps(FAST_INDEX))
    ace, store = ["-m", "ace_index.flows.cli"], ["--store", str(work / "store")]
    for folder, (seed, images, audio, videos) in SAMPLE_FOLDERS.items():
        counts = ["--images", str(images), "--audio", str(audio), "--videos", str(videos)]
        checked(run([*ace, "sample-corpus", folder, "--seed", str(seed), *counts], work))
    tiny = index_args(TINY)
    checked(run([*ace, "index", "corpus", *store, "--config", "fast.json", *tiny], work))
    checked(run([*ace, "ingest", "batch", *store], work))
    return work / "store"


def resolved(argv: list[str], request) -> list[str]:
    """SMOKE with its placeholders given (their fixtures built only where named)."""
    fixtures = {"{corpus}": "kept_corpus", "{store}": "two_version_store"}
    return [str(request.getfixturevalue(fixtures[a])) if a in fixtures else a for a in argv]


def smoke_case(name: str):
    marks = [] if name in QUICK else [pytest.mark.slow]
    if name in NEEDS and not NEEDS[name].exists():
        marks.append(pytest.mark.skip(reason=f"needs {NEEDS[name]}, absent here"))
    if name in BROKEN:
        marks.append(pytest.mark.xfail(reason=BROKEN[name], strict=True))
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [smoke_case(n) for n in bench_modules()])
def test_the_bench_runs_at_its_smallest_size(name, tmp_path, request):
    smoke = smoke_argv(module_tree(name))
    assert smoke is not None, f"bench/{name}.py declares no SMOKE"
    proc = checked(run(["-m", "bench", name, *resolved(smoke, request)], tmp_path))
    assert re.search(PRINTS[name], proc.stdout), proc.stdout[-3000:]


def test_every_module_of_bench_is_a_bench_with_a_smoke_argv():
    for name in bench_modules():
        tree = module_tree(name)
        assert defines_main(tree), f"bench/{name}.py: no main() (or list it in HELPERS)"
        argv = smoke_argv(tree)
        assert isinstance(argv, list), f"bench/{name}.py: no SMOKE = [...] (its smallest argv)"
        assert all(isinstance(a, str) for a in argv), f"bench/{name}.py: SMOKE holds strings"


def test_every_bench_has_a_line_its_smoke_run_must_print():
    assert set(PRINTS) == set(bench_modules()), "PRINTS: a pattern of each bench's figures"


def test_the_listing_names_every_bench_and_an_unknown_one_is_refused(tmp_path):
    listing = checked(run(["-m", "bench", "--list"], tmp_path)).stdout
    for name in bench_modules():
        assert re.search(rf"^{name} +\S", listing, re.M), name
    unknown = run(["-m", "bench", "no-such-bench"], tmp_path)
    assert unknown.returncode == 2
    assert len(unknown.stderr.strip().splitlines()) == 1 and "no-such-bench" in unknown.stderr


def test_a_name_with_dashes_runs_and_a_bench_runs_as_a_file_too(tmp_path):
    dashed = checked(run(["-m", "bench", "world-distinct", "--sizes", "10"], tmp_path))
    assert re.search(PRINTS["world_distinct"].replace("100", "10"), dashed.stdout)
    as_file = checked(
        run([str(BENCH / "ivf_codes.py"), "--items", "2000", "--runs", "1"], tmp_path)
    )
    assert re.search(PRINTS["ivf_codes"], as_file.stdout)
