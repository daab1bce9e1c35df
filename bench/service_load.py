"""The service under load and under hostile uploads (issue 42). Prints markdown; not a test.

  .venv/bin/python -m bench service_load [--store S] [--clients 32 128] [--seconds 60]
                                         [--uploads 30] [--protocols ace stock]

The service runs as its own process over a store (``--store``, else a small one built here
with the tiny random-weight encoders), with ``ace serve``'s protocol (``ace``: header and body
deadlines) and, as the reference, uvicorn's stock h11 protocol (``stock``). Keep-alive clients
(another process, a thread and one connection each) search for ``--seconds``; every failure
is counted by kind (a dropped connection, a timeout, any other error, a status of 500 or
more). Then ``--uploads`` hostile uploads are sent at once (decompression bombs: an AVIF and
a PNG of about 85 Mpx, and a body streamed past the size limit) and the service's peak RSS is
compared with its RSS at rest after a search and a search by file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import run_clients  # noqa: E402

SMOKE = ["--store", "{store}", "--clients", "4", "--seconds", "3", "--uploads", "3"]
SERVE = {
    "ace": "from ace_index.flows.serve.app import serve; serve({store!r}, port={port})",
    "stock": (
        "import uvicorn; from ace_index.flows.serve.app import create_app; "
        "uvicorn.run(create_app({store!r}), port={port}, log_level='warning', http='h11')"
    ),
}
WORDS = ["red", "blue", "circle", "square", "loud", "tone", "moving", "bird", "rain"]


def small_store() -> Path:
    """A store of 12 sample items indexed with the tiny random-weight encoders."""
    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-load-"))
    ace = [sys.executable, "-m", "ace_index.flows.cli"]
    corpus = ["--images", "8", "--audio", "2", "--videos", "2"]
    subprocess.run([*ace, "sample-corpus", str(tmp / "c"), *corpus], check=True)
    cfg = {"train": {"epochs": 2}, "embed": {"image": {"model": "ace-tiny-vit",
           "pretrained": "random"}, "audio": {"checkpoint": "random"}}}  # fmt: skip
    (tmp / "fast.json").write_text(json.dumps(cfg))
    index = [*ace, "index", str(tmp / "c"), "--store", str(tmp / "s")]
    subprocess.run([*index, "--config", str(tmp / "fast.json")], check=True, capture_output=True)
    return tmp / "s"


def started(store: Path, protocol: str) -> tuple[subprocess.Popen, str]:
    import httpx

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = SERVE[protocol].format(store=str(store), port=port)
    code = "from ace_index.tasks import _env; " + serve
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz").json().get("status") == "ok":
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the service on {url} did not start")


def load(url: str, clients: int, seconds: float) -> dict:
    """Keep-alive clients searching for ``seconds``, from another process."""
    code = (
        f"from bench.service_load import client_loops; client_loops({url!r}, {clients}, {seconds})"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def client_loops(url: str, clients: int, seconds: float) -> None:
    """Prints {"requests", "failures": {kind: count}} as JSON."""
    import httpx

    done, failures, stop = Counter(), Counter(), threading.Event()

    def loop(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            n = 0
            while not stop.is_set():
                n += 1
                q = " ".join(WORDS[(i + n + j) % len(WORDS)] for j in range(3))
                try:
                    r = c.get("/api/search", params={"q": q, "k": 10})
                    done["requests"] += 1
                    if r.status_code >= 500:
                        failures[f"status {r.status_code}"] += 1
                except httpx.RemoteProtocolError:
                    failures["dropped connection"] += 1
                except httpx.TimeoutException:
                    failures["timeout"] += 1
                except httpx.HTTPError as e:
                    failures[type(e).__name__] += 1

    took = run_clients(loop, clients, seconds, stop)
    print(json.dumps({"requests": done["requests"], "seconds": took, "failures": failures}))


def status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def bombs() -> list[tuple[str, bytes]]:
    """Small files that decode to about 85 Mpx (a blank picture compresses to almost nothing)."""
    from PIL import Image

    out = []
    for name, size in (("bomb.png", (9000, 9000)), ("bomb.avif", (9400, 9400))):
        buf = io.BytesIO()
        Image.new("RGB", size, (255, 255, 255)).save(buf, format=name.split(".")[1].upper())
        out.append((name, buf.getvalue()))
    return out


def hostile_uploads(url: str, pid: int, n: int) -> dict:
    """``n`` hostile uploads at once: the statuses and the service's RSS before and at peak."""
    import httpx
    from PIL import Image

    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 40, 40)).save(photo, format="JPEG")
    with httpx.Client(base_url=url, timeout=120) as c:  # at rest: a search, a file search
        c.get("/api/search", params={"q": "a red circle"})
        c.post("/api/search/file", files={"file": ("p.jpg", photo.getvalue())})
    rest = status_mb(pid, "VmRSS")
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM from here
    files, statuses = bombs(), Counter()

    def endless():  # a file part streamed without a Content-Length, far past the limit
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        for _ in range(1 << 12):
            yield b"\0" * (1 << 20)

    def send(i: int) -> None:
        streamed = {"content-type": "multipart/form-data; boundary=b"}
        with httpx.Client(base_url=url, timeout=120) as c:
            try:
                if i % 3 == 2:
                    r = c.post("/api/search/file", content=endless(), headers=streamed)
                else:
                    r = c.post("/api/search/file", files={"file": files[i % 3]})
                statuses[r.status_code] += 1
            except httpx.HTTPError as e:
                statuses[type(e).__name__] += 1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"rest": rest, "peak": status_mb(pid, "VmHWM"), "statuses": statuses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None)
    ap.add_argument("--clients", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--uploads", type=int, default=30)
    ap.add_argument("--protocols", nargs="+", default=["ace", "stock"], choices=sorted(SERVE))
    args = ap.parse_args()
    store = Path(args.store) if args.store else small_store()
    print(f"store {store}; {os.cpu_count()} CPU threads; {args.seconds:.0f} s per row\n")
    print("| protocol | clients | requests | q/s | failures |\n|---|---|---|---|---|")
    for protocol in args.protocols:
        proc, url = started(store, protocol)
        try:
            for clients in args.clients:
                r = load(url, clients, args.seconds)
                kinds = ", ".join(f"{k} {v}" for k, v in r["failures"].items()) or "none"
                qps = r["requests"] / r["seconds"]
                print(f"| {protocol} | {clients} | {r['requests']:,} | {qps:.1f} | {kinds} |")
            if protocol == "ace":
                up = hostile_uploads(url, proc.pid, args.uploads)
        finally:
            proc.terminate()
            proc.wait(30)
    if "ace" in args.protocols:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(up["statuses"].items(), key=str))
        print(f"\n{args.uploads} hostile uploads at once ({statuses}): service RSS at rest "
              f"{up['rest']:.0f} MB, peak {up['peak']:.0f} MB, "
              f"+{up['peak'] - up['rest']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
