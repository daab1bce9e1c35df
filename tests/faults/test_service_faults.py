"""The service sends only files that still resolve, as regular files, inside their source
with the indexed bytes; says nothing about server paths where anyone can read it; takes its
token as a cookie (never inside a URL) compared in constant time; survives a read-only store
and closes a client that never finishes its headers."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import time
from pathlib import Path

import pytest
from conftest import serving
from fastapi import File, UploadFile  # module level: the route's annotations name them

from ace_index.storage.store import Store


@pytest.fixture
def served(store, tmp_path):
    """A client over a copy of the store whose corpus is a copy too (safe to damage)."""
    from fastapi.testclient import TestClient

    from ace_index.flows.serve.app import create_app

    with TestClient(create_app(str(store), token="s3cret")) as c:
        c.cookies.set("ace_token", "s3cret")
        yield c


def _image(client) -> dict:
    r = client.get("/api/search", params={"q": "a red circle", "k": 10, "modality": "image"})
    assert r.status_code == 200, r.text
    item_id = r.json()["results"][0]["item_id"]
    return client.get(f"/api/items/{item_id}").json()


@pytest.fixture
def own_corpus(built, tmp_path):
    """The built corpus restored after a test that swaps its files."""
    backup = tmp_path / "corpus-backup"
    shutil.copytree(built / "corpus", backup)
    yield built / "corpus"
    shutil.rmtree(built / "corpus")
    shutil.copytree(backup, built / "corpus")


def test_a_file_swapped_for_a_link_outside_its_source_is_not_served(served, own_corpus):
    item = _image(served)
    assert "location" not in item  # the API never shows server paths
    assert served.get(f"/media/{item['item_id']}").status_code == 200
    os.unlink(own_corpus / item["path"])
    os.symlink("/etc/hostname", own_corpus / item["path"])
    for route in ("media", "thumb"):
        r = served.get(f"/{route}/{item['item_id']}")
        assert r.status_code == 410 and "outside its source" in r.json()["detail"]


def test_a_file_with_other_bytes_is_not_served(served, own_corpus):
    item = _image(served)
    with open(own_corpus / item["path"], "ab") as f:
        f.write(b"changed")
    r = served.get(f"/media/{item['item_id']}")
    assert r.status_code == 410 and "changed since it was indexed" in r.json()["detail"]


def test_health_and_errors_print_no_server_paths(served, store):
    root = str(store.resolve())
    assert root not in served.get("/healthz").text
    r = served.get("/api/eval", params={"version": "v000009"})
    assert r.status_code == 404 and root not in r.text


def test_the_token_is_a_cookie_never_a_url(store):
    from fastapi.testclient import TestClient

    from ace_index.flows.serve.app import create_app

    with TestClient(create_app(str(store), token="s3cret")) as c:
        assert c.get("/api/versions").status_code == 401
        assert c.get("/api/versions", params={"token": "s3cre"}).status_code == 401
        page = c.get("/", params={"token": "s3cret"})
        assert page.cookies.get("ace_token") == "s3cret"
        c.cookies.set("ace_token", "s3cret")
        r = c.get("/api/search", params={"q": "a red circle"})
        assert r.status_code == 200 and "s3cret" not in r.text
        assert c.get(r.json()["results"][0]["thumb_url"]).status_code == 200


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_thumbnails_on_a_read_only_store_are_served_uncached(served, store):
    thumbs = store / "thumbs"
    thumbs.mkdir(exist_ok=True)
    thumbs.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        item = _image(served)
        r = served.get(f"/thumb/{item['item_id']}")
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    finally:
        thumbs.chmod(0o755)


def test_thumbnails_are_served_when_the_cache_cannot_be_written(served, store, monkeypatch):
    from ace_index.flows.serve import media as serve_media

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(Store(store).thumbnail_file("x")), "write_bytes", full)
    item = _image(served)
    r = served.get(f"/thumb/{item['item_id']}")
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    assert not Store(store).thumbnail_file(item["item_id"]).exists()
    assert serve_media  # the module under test


@pytest.fixture
def deadline_server():
    """A port served by the smallest ASGI app (it reads the body, answers "ok") over the
    service's protocol, with deadlines of 0.5 s for headers and 1 s for a body."""
    from ace_index.flows.serve.guard import HeaderDeadlineProtocol

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        length = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": b"ok"})

    saved = HeaderDeadlineProtocol.header_timeout_s, HeaderDeadlineProtocol.body_timeout_s
    HeaderDeadlineProtocol.header_timeout_s, HeaderDeadlineProtocol.body_timeout_s = 0.5, 1.0
    config = {"http": HeaderDeadlineProtocol, "lifespan": "off", "timeout_keep_alive": 30}
    try:
        with serving(app, **config) as port:
            yield port
    finally:
        HeaderDeadlineProtocol.header_timeout_s, HeaderDeadlineProtocol.body_timeout_s = saved


def test_a_client_that_never_finishes_its_headers_is_closed(deadline_server):
    with socket.create_connection(("127.0.0.1", deadline_server), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        t = time.monotonic()
        assert c.recv(100) == b"" and time.monotonic() - t < 3  # closed by the server
    with socket.create_connection(("127.0.0.1", deadline_server), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in c.recv(200)


def test_a_kept_alive_connection_is_not_closed_by_an_earlier_requests_deadline(
    deadline_server,
):
    """Requests 0.15 s apart on one connection for 1.5 s: the deadlines armed at the
    connection's start and at its first responses (0.5 s) fall between later requests and
    must not close it (issue 42: dropped searches); each gap is far inside the deadline."""
    with socket.create_connection(("127.0.0.1", deadline_server), timeout=5) as c:
        for _ in range(10):
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"ok"):  # the whole answer, however it is split
                chunk = c.recv(200)
                assert chunk, "the server closed the kept-alive connection"
                answer += chunk
            assert b"200 OK" in answer
            time.sleep(0.15)


def test_a_trickled_body_is_closed_at_its_deadline(deadline_server):
    with socket.create_connection(("127.0.0.1", deadline_server), timeout=5) as c:
        c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        t = time.monotonic()
        with pytest.raises((ConnectionError, BrokenPipeError)):
            for _ in range(40):  # a byte every 0.1 s: 4 s if never closed
                c.sendall(b"x")
                time.sleep(0.1)
            assert c.recv(100) == b""  # closed, nothing answered
            raise ConnectionError("closed")
        assert time.monotonic() - t < 3


@pytest.fixture
def upload_server():
    """A port served by a FastAPI app with one upload route behind a 1000-byte BodyLimit
    and an HTTP middleware (as the service's); the route counts the bytes it was given."""
    from fastapi import FastAPI

    from ace_index.flows.serve.guard import BodyLimit

    app, seen = FastAPI(), []

    @app.post("/up")
    def up(file: UploadFile = File(...)):
        seen.append(len(file.file.read()))
        return {"bytes": seen[-1]}

    @app.middleware("http")  # as the service's token check: it wraps the body's receive
    async def passthrough(request, call_next):
        return await call_next(request)

    app.add_middleware(BodyLimit, limit=1000)
    with serving(app) as port:
        yield port, seen


def _multipart(payload: bytes) -> tuple[bytes, bytes]:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
    return b"multipart/form-data; boundary=b", head + payload + b"\r\n--b--\r\n"


def test_an_upload_over_the_limit_is_refused_before_its_body_is_read(upload_server):
    import httpx

    port, seen = upload_server
    url = f"http://127.0.0.1:{port}/up"
    kind, body = _multipart(b"x" * 500)
    ok = httpx.post(url, content=body, headers={"content-type": kind.decode()})
    assert ok.json() == {"bytes": 500}
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:  # declared too large
        c.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n"
                  b"Content-Type: " + kind + b"\r\n\r\n")  # fmt: skip
        t = time.monotonic()
        answer = b""
        while chunk := c.recv(500):  # the answer, then the server closes
            answer += chunk
        assert b" 413 " in answer and b"at most 1000 bytes" in answer
        assert time.monotonic() - t < 2  # at once: no gigabyte waited for
    kind, body = _multipart(b"x" * 5000)

    def chunks():  # no Content-Length: counted as it arrives
        for i in range(0, len(body), 400):
            yield body[i : i + 400]

    refused = httpx.post(url, content=chunks(), headers={"content-type": kind.decode()})
    assert refused.status_code == 413 and "at most 1000 bytes" in refused.json()["detail"]
    assert seen == [500]  # the route never saw the oversized file


def test_an_example_that_cannot_be_decoded_is_refused_without_a_server_path(served, tmp_path):
    """A cut MP4 given to search by is a 415 whose reason names no path (the decoders named
    the server's temporary copy of the upload)."""
    import re

    from fault_helpers import cut_mp4

    cut = cut_mp4(tmp_path / "clip.mp4")
    r = served.post("/api/search/file", files={"file": ("clip.mp4", cut)})
    assert r.status_code == 415, r.text
    assert not re.search(r"(?<![\w<])/[^\s'\"(),;]+", r.json()["detail"]), r.json()["detail"]


def test_a_killed_services_temp_files_are_removed_by_the_next(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from ace_index.flows.serve.guard import TEMP_PREFIX, own_tempdir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    killed = tmp_path / f"{TEMP_PREFIX}{gone.stdout.strip()}"  # a service killed mid-upload
    (killed / "upload").mkdir(parents=True)
    (killed / "upload" / "part").write_bytes(b"x" * 1000)
    running = tmp_path / f"{TEMP_PREFIX}1"  # pid 1 runs: another live service's folder
    running.mkdir()
    mine = own_tempdir()
    assert not killed.exists() and running.exists()
    assert mine.parent == tmp_path and tempfile.gettempdir() == str(mine)
    with tempfile.NamedTemporaryFile() as spooled:  # where uploads now go
        assert Path(spooled.name).parent == mine
