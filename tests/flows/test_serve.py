"""`ace serve`: the HTTP API over a real store, safe defaults, micro-batching, and a version
swap under load that loses no request."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time

import pytest
from conftest import SHARED_MEDIA, fast_config, free_port, serving

from ace_index.flows.cli import main
from ace_index.storage.store import Store

FAST = fast_config(2, 2, 3, 2)


@pytest.fixture(scope="module")
def store(prefect_harness, tmp_path_factory):
    """v1 (index) and v2 (a retrain copy) of a small image + audio + video corpus."""
    from ace_core.synth import CorpusCounts, write_sample_corpus

    root = tmp_path_factory.mktemp("serve")
    write_sample_corpus(root / "c", seed=8, counts=CorpusCounts(images=4, audio=2, videos=2))
    photos = SHARED_MEDIA / "odd" / "pillow" / "avif"
    for name in ("hopper.heif", "hopper.avif"):  # formats the page must show (where present)
        if (photos / name).exists():
            shutil.copy(photos / name, root / "c" / "images" / name)
    (root / "fast.json").write_text(json.dumps(FAST))
    argv = [
        "index",
        str(root / "c"),
        "--store",
        str(root / "s"),
        "--config",
        str(root / "fast.json"),
    ]
    assert main(argv) == 0
    publish_copy(root / "s")
    return root / "s"


def publish_copy(store) -> str:
    """Publish LATEST again as a retrain (same items and IDs): a new version, cheaply."""
    from ace_index.storage.build.publish import publish_version
    from ace_index.storage.build.staging import stage_copy
    from ace_index.storage.formats.manifest import version_config

    s = Store(store)
    latest = s.version()
    staged = stage_copy(str(store), s.latest())
    shutil.copytree(latest.retriever, staged.retriever)
    shutil.copy(latest.eval, staged.eval)
    return publish_version(
        str(store), staged, operation="retrain", expected_parent=None,
        config=version_config(str(store)), ids_report=s.manifest()["ids"],
        encoders=s.manifest().get("encoders"),
    )["version"]  # fmt: skip


@pytest.fixture(scope="module")
def client(store):
    from fastapi.testclient import TestClient

    from ace_index.flows.serve.app import create_app

    with TestClient(create_app(str(store), watch_s=0.2)) as c:
        yield c


def test_search_returns_results_with_ids_and_urls(client):
    r = client.get("/api/search", params={"q": "a red circle", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == "v000002" and len(body["results"]) == 5
    for hit in body["results"]:
        assert set(hit) >= {"item_id", "path", "source_id", "modality", "sid", "coarse", "fine",
                            "suffix", "score", "media_url", "thumb_url"}  # fmt: skip
        assert hit["sid"] == ".".join(map(str, [hit["coarse"], *hit["fine"], hit["suffix"]]))
        assert "location" not in hit  # server paths stay private
    only_audio = client.get("/api/search", params={"q": "a tone", "k": 3, "modality": "audio"})
    assert {h["modality"] for h in only_audio.json()["results"]} == {"audio"}
    pinned = client.get("/api/search", params={"q": "a red circle", "version": "v000001"})
    assert pinned.json()["version"] == "v000001"


@pytest.mark.parametrize(
    "params, status",
    [
        ({"q": "x" * 5000}, 413),
        ({"q": "   "}, 400),
        ({"q": "x", "k": 0}, 400),
        ({"q": "x", "k": 1000}, 400),
        ({"q": "x", "modality": "text"}, 422),
        ({"q": "x", "version": "../../etc"}, 400),
        ({"q": "x", "version": "²"}, 400),
        ({"q": "x", "version": "١"}, 400),
        ({"q": "x", "version": "v000099"}, 404),
        ({"q": "x", "since": "9999-99-99"}, 400),
        ({"q": "x", "until": "2024-02-30"}, 400),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason_and_no_trace(client, params, status):
    r = client.get("/api/search", params=params)
    assert r.status_code == status and "detail" in r.json()
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    "path, modality",
    [("captions", None), ("dense", "audio"), ("captions", "video"), ("auto", None)],
)
def test_the_cli_and_the_service_give_the_same_answer(client, store, capsys, path, modality):
    """One search entry (query.search): the same options on both interfaces, the same
    results in the same order."""
    params = {"q": "a red circle", "k": 3, "path": path}
    argv = ["query", "a red circle", "--store", str(store), "-k", "3", "--path", path, "--json"]
    if modality:
        params["modality"] = modality
        argv += ["--modality", modality]
    served = client.get("/api/search", params=params).json()
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["item_id"] for r in printed["results"]] == [r["item_id"] for r in served["results"]]
    resolved = {"dense": None, "auto": "fused"}.get(path, path)
    assert printed["path"] == served["path"] == resolved
    mode = {"dense": "dense", "auto": "fused"}.get(path, "generative")
    assert printed["mode"] == served["mode"] == mode
    if modality:
        assert {r["modality"] for r in served["results"]} == {modality}
    assert [r["score"] for r in printed["results"]] == [r["score"] for r in served["results"]]


def test_items_similar_versions_audit_eval(client, store):
    params = {"q": "a blue square", "k": 1, "path": "generative"}
    hit = client.get("/api/search", params=params).json()["results"][0]
    item = client.get(f"/api/items/{hit['item_id']}").json()
    assert item["sid"] == hit["sid"] and item["modality"] == hit["modality"]
    assert isinstance(item["captions"], list) and "location" not in item
    similar = client.get(f"/api/similar/{hit['item_id']}", params={"k": 3}).json()["results"]
    assert len(similar) == 3 and similar[0]["item_id"] == hit["item_id"]  # itself first
    assert [v["version"] for v in client.get("/api/versions").json()] == ["v000001", "v000002"]
    audit = client.get("/api/audit", params={"from": "v000001", "to": "v000002"}).json()
    assert (audit["added"], audit["removed"], audit["changed"]) == (0, 0, 0)
    ev = client.get("/api/eval", params={"version": "v000001"}).json()
    assert ev["version"] == "v000001" and "R@1" in ev["generative"] and ev["ids"]["utilization"]
    assert client.get("/api/items/" + "0" * 64).status_code == 404
    for route in ("/api/eval", f"/api/items/{hit['item_id']}"):
        assert client.get(route, params={"version": "²"}).status_code == 400
    assert client.get("/api/audit", params={"from": "١", "to": "2"}).status_code == 400
    assert client.get("/healthz").json() == {
        "status": "ok", "version": "v000002", "loading": False, "last_error": None
    }  # fmt: skip
    assert "ACE Index" in client.get("/").text
    docs = client.get("/docs").text  # offline: every asset from this server, none from a CDN
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs)
    assert assets and all(a.startswith("/") for a in assets), assets
    assert all(client.get(a).status_code == 200 for a in assets)


def test_media_streams_with_ranges_and_thumbnails_are_jpegs(client):
    by_kind = {}
    for kind in ("image", "audio", "video"):
        r = client.get("/api/search", params={"q": "x", "k": 1, "modality": kind}).json()
        by_kind[kind] = r["results"][0]
    for kind, hit in by_kind.items():
        full = client.get(hit["media_url"])
        assert full.status_code == 200 and full.headers["content-type"].startswith(kind)
        part = client.get(hit["media_url"], headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == full.content[10:20]
        thumb = client.get(hit["thumb_url"])
        assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff", kind
    assert client.get("/media/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/media/" + "f" * 64).status_code == 404


def test_a_token_guards_everything_but_the_page_and_health(store):
    from fastapi.testclient import TestClient

    from ace_index.flows.serve.app import create_app

    with TestClient(create_app(str(store), token="s3cret")) as c:
        assert c.get("/api/versions").status_code == 401
        assert c.get("/api/versions", params={"token": "s3cret"}).status_code == 200
        auth = {"Authorization": "Bearer s3cret"}
        assert c.get("/api/versions", headers=auth).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_a_public_bind_needs_a_token(store, capsys):
    assert main(["serve", "--store", str(store), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err


def test_concurrent_searches_share_one_beam_search(client, monkeypatch):
    from ace_index.flows.serve.app import SearchBatcher
    from ace_index.query.rankers.fused import FusedRanker

    calls = []
    real = FusedRanker.rank  # the default path's search

    def counted(self, loaded, request):
        calls.append(len(request.texts))
        return real(self, loaded, request)

    monkeypatch.setattr(FusedRanker, "rank", counted)
    try:
        threads = [
            threading.Thread(target=client.get, args=("/api/search",),
                             kwargs={"params": {"q": f"query {i}", "k": 3}})
            for i in range(16)
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        monkeypatch.undo()
    assert sum(calls) == 16 and max(calls) > 1  # batched
    assert isinstance(client.app.state.batcher, SearchBatcher)


def test_a_version_swap_under_load_loses_no_request(store, tmp_path):
    import httpx
    import uvicorn

    from ace_index.flows.serve.app import create_app

    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(str(copy), watch_s=0.2), port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    answers, stop = [], threading.Event()

    def client_loop(i):
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                r = c.get("/api/search", params={"q": f"red circle {i}", "k": 2})
                answers.append((r.status_code, r.json().get("version")))

    clients = [threading.Thread(target=client_loop, args=(i,)) for i in range(4)]
    for t in clients:
        t.start()
    try:
        time.sleep(1.0)
        new = publish_copy(copy)
        deadline = time.monotonic() + 60
        while not any(v == new for _, v in answers) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in clients:
            t.join()
        server.should_exit = True
        thread.join(10)
    assert answers and all(code == 200 for code, _ in answers)
    seen = [v for _, v in answers]
    assert "v000002" in seen and new in seen  # served before and after the swap


def _browser():
    """Headless Chromium from Debian's packages through Selenium (skips with the reason when
    either is missing; .ci/run installs both)."""
    import shutil as sh

    chromium = sh.which("chromium") or sh.which("chromium-browser")
    driver = sh.which("chromedriver") or sh.which("chromium-driver")
    if not (chromium and driver):
        pytest.skip("no headless Chromium here (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e .[dev])")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture
def served(store):
    from ace_index.flows.serve.app import create_app

    with serving(create_app(str(store))) as port:
        yield f"http://127.0.0.1:{port}"


def test_the_page_searches_plays_switches_versions_and_audits(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = _browser()
    wait = WebDriverWait(browser, 60)
    try:
        browser.get(served + "/")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#version option")) == 3)
        browser.find_element(By.ID, "q").send_keys("a red circle")
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#results .card img"))
        loaded = "return [...document.querySelectorAll('#results .card img')]" \
                 ".every(i => i.complete && i.naturalWidth > 0)"  # fmt: skip
        wait.until(lambda b: b.execute_script(loaded))  # thumbnails shown
        assert browser.find_elements(By.CSS_SELECTOR, "#results .card .sid")
        score = browser.find_element(By.CSS_SELECTOR, "#results .card .score")
        assert score.get_attribute("title").startswith("fused from: captions")  # the default path

        Select(browser.find_element(By.ID, "modality")).select_by_value("audio")
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#results .card audio"))
        ready = "const a = document.querySelector('#results audio'); a.preload = 'auto';" \
                "if (a.readyState === 0) a.load(); return a.readyState"  # fmt: skip
        wait.until(lambda b: b.execute_script(ready) >= 1)  # the audio result opens

        Select(browser.find_element(By.ID, "modality")).select_by_value("video")
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#results .card video"))
        video = "const v = document.querySelector('#results video'); if (!v.readyState) v.load();" \
                "return [v.readyState, v.duration, v.error && v.error.message]"  # fmt: skip
        wait.until(lambda b: b.execute_script(video)[0] >= 1)  # the video result plays
        state, duration, error = browser.execute_script(video)
        assert error is None and abs(duration - 2.0) < 0.3  # 16 frames at 8 fps

        Select(browser.find_element(By.ID, "version")).select_by_value("v000001")
        status = browser.find_element(By.ID, "search-status")
        wait.until(lambda b: status.get_attribute("data-version") == "v000001")

        browser.find_element(By.CSS_SELECTOR, "nav button[data-view=audit]").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#audit-from option")) == 2)
        browser.find_element(By.CSS_SELECTOR, "#audit-form button").click()
        wait.until(lambda b: b.find_elements(By.ID, "audit-counts"))
        cells = browser.find_element(By.ID, "audit-counts").text
        assert "v000001" in cells and "v000002" in cells

        browser.find_element(By.CSS_SELECTOR, "nav button[data-view=versions]").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#versions-chart svg.chart .legend"))
        apart = "const c = document.querySelector('#versions-chart svg.chart');" \
                "const right = Math.max(...[...c.querySelectorAll('polyline, circle')]" \
                ".map(e => e.getBoundingClientRect().right));" \
                "const left = Math.min(...[...c.querySelectorAll('.legend')]" \
                ".map(e => e.getBoundingClientRect().left)); return left > right"  # fmt: skip
        assert browser.execute_script(apart)  # the chart's legend clear of its lines

        browser.get(served + "/docs")  # the API docs render offline
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".swagger-ui .title"))
        assert "ACE Index" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .title").text
    finally:
        browser.quit()


def test_relevance_filters_sorting_and_keywords(client, store):
    """Results carry a calibrated relevance (ordered by it) and the answer says whether any
    reaches the version's threshold; source and date filters narrow the items, sort=date
    orders newest first; keywords=true adds file-name and caption matches."""
    from ace_index.storage.store import Store

    body = client.get("/api/search", params={"q": "a red circle", "k": 6}).json()
    rel = [r["relevance"] for r in body["results"]]
    assert all(0 <= x <= 1 for x in rel) and rel == sorted(rel, reverse=True)
    kept = Store(store).evaluation_file("v000002", f"relevance-{body['path']}")
    threshold = json.loads(kept.read_text())["threshold"]
    assert body["no_good_match"] == (rel[0] < threshold)
    dated = client.get("/api/search", params={"q": "a", "k": 10, "sort": "date"}).json()
    dates = [r["date"] for r in dated["results"]]
    assert all(dates) and dates == sorted(dates, reverse=True)
    source = body["results"][0]["source_id"]
    only = client.get("/api/search", params={"q": "a", "k": 10, "source": source}).json()
    assert only["results"] and {r["source_id"] for r in only["results"]} == {source}
    future = client.get("/api/search", params={"q": "a", "since": "2999-01-01"}).json()
    assert future["results"] == []
    until = max(dates)[:10]
    assert len(client.get("/api/search", params={"q": "a", "k": 10, "until": until}).json()
               ["results"]) == len(dated["results"])  # fmt: skip
    for bad, status in (({"source": "nope"}, 404), ({"since": "May 2024"}, 400)):
        r = client.get("/api/search", params={"q": "a", **bad})
        assert r.status_code == status and "detail" in r.json(), bad
    inverted = {"q": "a", "since": "2025", "until": "2024"}  # nothing passes: no error
    assert client.get("/api/search", params=inverted).json()["results"] == []
    item = client.get(f"/api/items/{body['results'][0]['item_id']}").json()
    word = item["path"].rsplit("/", 1)[-1].split(".")[0]  # its file name, e.g. img_0003
    words = client.get("/api/search", params={"q": word, "keywords": "true"}).json()
    assert words["keyword_results"][0]["item_id"] == item["item_id"]
    assert words["keyword_results"][0]["match"] == "keywords"


def test_the_cli_filters_sorts_and_matches_keywords_as_the_service_does(client, store, capsys):
    top = client.get("/api/search", params={"q": "a", "k": 1}).json()["results"][0]
    since = top["date"][:10]
    params = {"q": "a shape", "k": 5, "source": top["source_id"], "since": since, "sort": "date",
              "keywords": "true"}  # fmt: skip
    served = client.get("/api/search", params=params).json()
    argv = ["query", "a shape", "--store", str(store), "-k", "5", "--source", top["source_id"],
            "--since", since, "--sort", "date", "--keywords", "--json"]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    for key in ("results", "keyword_results"):
        assert [r["item_id"] for r in printed[key]] == [r["item_id"] for r in served[key]]
    assert printed["no_good_match"] == served["no_good_match"]
    assert main(["query", "a", "--store", str(store), "--since", "May"]) == 2
    assert "since must be an ISO date" in capsys.readouterr().err
    assert main(["serve", "--store", str(store), "--play-cache-mb", "-1"]) == 2


def test_an_upload_over_the_limit_is_refused_before_any_work(client, monkeypatch):
    from ace_index.flows.serve import examples as serve_examples

    monkeypatch.setattr(serve_examples, "MAX_FILE_BYTES", 1000)
    r = client.post("/api/search/file", files={"file": ("big.png", b"x" * 5000)})
    assert r.status_code == 413 and "at most 1000 bytes" in r.json()["detail"]


def test_an_image_too_large_to_decode_is_refused_from_its_header(client, tmp_path):
    """A 9000x9000 PNG (about 0.2 MB) would decode to 81 Mpx: refused from its header; an
    8000x6000 JPEG decodes at 1/8 scale (0.75 Mpx) and is searched."""
    from PIL import Image

    Image.new("RGB", (9000, 9000)).save(tmp_path / "bomb.png")
    Image.new("RGB", (8000, 6000), (200, 30, 30)).save(tmp_path / "big.jpg", quality=50)

    def upload(name: str):
        sent = {"file": (name, (tmp_path / name).read_bytes())}
        return client.post("/api/search/file", files=sent)

    bomb = upload("bomb.png")
    assert bomb.status_code == 413 and "81 Mpx decoded" in bomb.json()["detail"]
    big = upload("big.jpg")
    assert big.status_code == 200 and big.json()["example"]["modality"] == "image"


def test_a_file_given_back_finds_itself_first(client, store):
    """POST /api/search/file: an indexed image given back finds itself first; any indexed
    file given back answers as query by example of that item does (embedded as indexing
    embedded it, with the version's encoders)."""
    items = {}
    for m in ("image", "audio", "video"):
        params = {"q": "a", "k": 1, "modality": m, "path": "generative"}
        hit = client.get("/api/search", params=params).json()
        items[m] = client.get(f"/api/items/{hit['results'][0]['item_id']}").json()
    for m, item in items.items():
        data = client.get(f"/media/{item['item_id']}").content
        r = client.post("/api/search/file", files={"file": ("x", data)}, data={"k": "3"})
        assert r.status_code == 200, r.text
        body, like = r.json(), client.get(f"/api/similar/{item['item_id']}", params={"k": 3})
        assert body["example"]["modality"] == m and body["results"] == like.json()["results"]
        assert m != "image" or body["results"][0]["item_id"] == item["item_id"]
        spaces = {"image": {"image", "video"}, "video": {"image", "video"}, "audio": {"audio"}}
        assert {x["modality"] for x in body["results"]} <= spaces[m]
    bad = client.post("/api/search/file", files={"file": ("notes.txt", b"just text")})
    assert bad.status_code == 415 and "detail" in bad.json()
    empty = client.post("/api/search/file", files={"file": ("e.png", b"")})
    assert empty.status_code == 400
    image = client.get(f"/media/{items['image']['item_id']}").content
    wrong = client.post("/api/search/file", files={"file": ("x.png", image)},
                        data={"modality": "audio"})  # fmt: skip
    assert wrong.status_code == 400 and "another space" in wrong.json()["detail"]


def test_heic_and_avif_photos_are_indexed_and_drawn(client, store):
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in pq_rows(Store(store).version().items)}
    if "hopper.heif" not in rows:
        pytest.skip("../shared/media is not here (a user's clone)")
    for name in ("hopper.heif", "hopper.avif"):
        assert rows[name]["status"] == "ok", rows[name]["error"]
        thumb = client.get(f"/thumb/{rows[name]['item_id']}")
        assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"


def test_play_sends_what_a_browser_plays(client, store, monkeypatch):
    """/play: the original when a browser plays it (the sample corpus's H.264 video, its WAV
    sounds), else an MP4 rendition made once and kept under renditions/; no image plays."""
    from fastapi.testclient import TestClient

    from ace_index.flows.serve import media as serve_media
    from ace_index.flows.serve.app import create_app

    hits = {m: client.get("/api/search", params={"q": "a", "k": 1, "modality": m}).json()
            ["results"][0] for m in ("video", "audio", "image")}  # fmt: skip
    assert "play_url" not in hits["image"]
    assert client.get(f"/play/{hits['image']['item_id']}").status_code == 404
    for m in ("video", "audio"):
        played, original = client.get(hits[m]["play_url"]), client.get(hits[m]["media_url"])
        assert played.status_code == 200 and played.content == original.content
    monkeypatch.setattr(serve_media, "playable_as_is", lambda path: False)  # as for MPEG-4 Part 2
    video = hits["video"]["item_id"]
    with TestClient(create_app(str(store))) as c:
        first = c.get(f"/play/{video}")
        assert first.status_code == 200 and first.headers["content-type"] == "video/mp4"
        kept = Store(store).renditions_dir / f"{video}.mp4"
        assert kept.read_bytes() == first.content == c.get(f"/play/{video}").content
        ranged = c.get(f"/play/{video}", headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.content) == 100
    kept.unlink()


def test_the_page_keeps_its_search_in_the_url_pages_details_similar_and_files(served, store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from ace_index.storage.store import Store

    items = pq_rows(Store(store).version().items)
    image = next(r for r in items if r["modality"] == "image" and r["status"] == "ok")
    browser = _browser()
    wait = WebDriverWait(browser, 60)
    cards = "return [...document.querySelectorAll('#results .card')].map(c => c.dataset.item)"
    try:
        browser.get(served + "/?q=a+shape&k=3&modality=image")  # a shared link runs its search
        wait.until(lambda b: len(b.execute_script(cards)) == 3)
        first = browser.execute_script(cards)
        assert browser.find_element(By.ID, "q").get_attribute("value") == "a shape"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#results .card .rel i")) == 3
        sources = browser.find_elements(By.CSS_SELECTOR, "#source option")
        assert [o.get_attribute("value") for o in sources] == ["", image["source_id"]]
        browser.find_element(By.ID, "next").click()  # paging
        wait.until(lambda b: "page=2" in b.current_url and b.execute_script(cards) != first)
        assert not set(browser.execute_script(cards)) & set(first)
        browser.back()  # the back button returns to page 1
        wait.until(lambda b: b.execute_script(cards) == first)

        browser.find_element(By.CSS_SELECTOR, "#results .card .details").click()  # detail view
        wait.until(lambda b: b.find_element(By.ID, "detail").get_attribute("open") is not None)
        text = browser.find_element(By.ID, "detail-body").text
        assert "semantic ID" in text and "captions" in text and "source" in text
        browser.find_element(By.ID, "detail-similar").click()  # query by example
        wait.until(lambda b: "like=" in b.current_url)
        wait.until(lambda b: b.execute_script(cards) and b.execute_script(cards)[0] == first[0])

        browser.find_element(By.ID, "q").clear()
        browser.find_element(By.ID, "q").send_keys("x" * 2100)  # an error clears old results
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#search-status .error"))
        assert not browser.execute_script(cards)

        name = image["path"].rsplit("/", 1)[-1].split(".")[0]  # keyword matches, shown apart
        browser.get(served + f"/?q={name}&sort=date")
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#keyword-results .card"))
        kw = browser.find_element(By.CSS_SELECTOR, "#keyword-results .card")
        assert kw.get_attribute("data-item") == image["item_id"]
        assert browser.find_element(By.ID, "sort").get_attribute("value") == "date"
        order = "const top = (s) => document.querySelector(s).getBoundingClientRect().top;" \
                "return top('#results .card') < top('#keyword-results .card')"  # fmt: skip
        assert browser.execute_script(order)  # the semantic results first, keywords below

        browser.get(served + "/?q=a&since=2999-01-01")  # emptied by a filter: not "no good match"
        wait.until(lambda b: b.find_elements(By.ID, "nothing-passes"))
        assert not browser.find_elements(By.ID, "no-good-match")

        status = "return document.getElementById('search-status').textContent"
        browser.get(served + "/?q=a")
        wait.until(lambda b: b.execute_script(cards))
        browser.find_element(By.ID, "file").send_keys(image["location"])  # query by file
        wait.until(lambda b: "items like" in b.execute_script(status))
        assert browser.execute_script(cards)[0] == image["item_id"]  # it finds itself first
        assert "file=" in browser.current_url and "q=" not in browser.current_url
        preview = browser.find_element(By.CSS_SELECTOR, "#example img")
        assert preview.get_attribute("src").startswith("blob:")
        assert browser.find_elements(By.ID, "uncalibrated")  # too few items to calibrate
        browser.refresh()  # the file is kept while the page is open
        wait.until(lambda b: "items like" in b.execute_script(status))
        assert browser.execute_script(cards)[0] == image["item_id"]
        assert browser.find_elements(By.CSS_SELECTOR, "#example img")
        browser.get(browser.current_url + "&since=2999-01-01")  # the page's filters apply
        wait.until(lambda b: b.find_elements(By.ID, "nothing-passes"))
        assert not browser.execute_script(cards) and "items like" in browser.execute_script(status)
    finally:
        browser.quit()


def pq_rows(path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(store, tmp_path):
    from ace_index.flows.serve.holder import VersionHolder

    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    holder = VersionHolder(str(copy))
    holder.refresh()
    before = holder.current.version
    new = publish_copy(copy)
    part = Store(copy).version(new).embedding_parts()[0]
    part.write_bytes(part.read_bytes()[:-100] + b"\0" * 100)  # damaged after publishing
    holder.refresh()
    assert holder.current.version == before and holder.get().version == before
    assert "damaged store" in holder.last_error and part.name in holder.last_error


def test_a_new_version_is_warmed_up_before_it_is_served(store):
    from ace_index.flows.serve.holder import VersionHolder
    from ace_index.query.loaded import NO_FILTERS

    holder = VersionHolder(str(store))
    assert holder.refresh()
    vm = holder.current
    assert vm.resolve("auto") == "fused"
    built = vm.cache.dense_indexes[(None, NO_FILTERS)]  # by the warm-up, not a request
    assert "dense" in built


def test_similar_and_file_results_carry_a_relevance(client, store):
    """Query by example: every result has a relevance in [0, 1], best first; a version of
    too few items to fit a calibration on has the documented default and says so."""
    items = pq_rows(Store(store).version().items)
    for row in items[:3]:
        body = client.get(f"/api/similar/{row['item_id']}", params={"k": 5}).json()
        rel = [r["relevance"] for r in body["results"]]
        assert rel and all(0 <= x <= 1 for x in rel) and rel == sorted(rel, reverse=True)
        assert body["relevance_calibrated"] is False and body["no_good_match"] is None
    image = next(r for r in items if r["modality"] == "image")
    data = client.get(f"/media/{image['item_id']}").content
    found = client.post("/api/search/file", files={"file": ("x.png", data)}).json()
    assert all(0 <= r["relevance"] <= 1 for r in found["results"])
    assert found["relevance_calibrated"] is False


def test_the_by_example_calibration_is_fit_on_the_items_themselves(store, tmp_path, monkeypatch):
    """Each item searched by its own embedding, its own item the right answer: the fit
    orders the right answers above the rest, is kept under evaluations/ and read back."""
    from ace_index.query import by_example
    from ace_index.query.loaded import load_version

    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    monkeypatch.setattr(by_example, "MIN_SELF_QUERIES", 4)
    loaded = load_version(str(copy), "v000002")
    cal = by_example.example_calibration(loaded)
    assert cal is not None and cal.queries == loaded.n_items and 0 <= cal.threshold <= 1
    assert all(a > 0 for a in cal.slopes.values())
    kept = Store(copy).evaluation_file("v000002", "relevance-by-example")
    assert json.loads(kept.read_text())["queries"] == cal.queries
    again = load_version(str(copy), "v000002")
    monkeypatch.setattr(by_example, "fit_example_calibration", lambda *a: 1 / 0)  # read back
    assert by_example.example_calibration(again) == cal
    item = loaded.model.item_ids[0]
    answer = by_example.similar_items(again, item, 3)
    assert answer.calibrated and answer.results[0]["item_id"] == item
    assert answer.no_good_match == (answer.results[0]["relevance"] < cal.threshold)


def test_an_exact_duplicate_ranks_first(client, store):
    """Every item searched by its own embedding finds itself first (relevance 1), and so
    does an indexed video or sound given back as a file (the decoder alone ranked some
    neighbours above them)."""
    items = [r for r in pq_rows(Store(store).version().items) if r["status"] == "ok"]
    for row in items:
        first = client.get(f"/api/similar/{row['item_id']}", params={"k": 3}).json()["results"][0]
        assert first["item_id"] == row["item_id"] and first["relevance"] == 1.0
    for row in (r for r in items if r["modality"] != "image"):
        data = client.get(f"/media/{row['item_id']}").content
        body = client.post("/api/search/file", files={"file": ("x", data)}, data={"k": "2"})
        assert body.json()["results"][0]["item_id"] == row["item_id"]


def test_a_search_by_file_honours_the_source_and_date_filters(client, store):
    items = [r for r in pq_rows(Store(store).version().items) if r["status"] == "ok"]
    image = next(r for r in items if r["modality"] == "image")
    data = client.get(f"/media/{image['item_id']}").content

    def by_file(**form):
        return client.post("/api/search/file", files={"file": ("x.png", data)}, data=form)

    future = by_file(since="2999-01-01")
    assert future.status_code == 200 and future.json()["results"] == []
    assert future.json()["no_good_match"] is None  # nothing passed: not "no good match"
    assert by_file(since="2025", until="2024").json()["results"] == []  # inverted: nothing
    assert by_file(source="nope").status_code == 404
    assert by_file(until="May 2024").status_code == 400
    source = by_file(source=image["source_id"], k="10").json()["results"]
    assert source and {r["source_id"] for r in source} == {image["source_id"]}
    day = image["date"][:10]
    dated = by_file(since=day, until=day, k="10").json()["results"]
    assert dated[0]["item_id"] == image["item_id"]
    assert all(r["date"][:10] == day for r in dated)
    videos = by_file(modality="video", since="1900", k="10").json()["results"]
    assert videos and {r["modality"] for r in videos} == {"video"}


def test_metrics_count_requests_by_route_template_and_name_the_version(client):
    """GET /metrics (Prometheus text): requests by route template and status (an item id
    never becomes a label), latency, the version served and its build's age."""
    before = client.get("/metrics").text
    client.get("/api/search", params={"q": "a red circle"})
    client.get("/api/items/" + "0" * 64)
    text = client.get("/metrics").text

    def count(line: str, body: str) -> float:
        found = [row for row in body.splitlines() if row.startswith(line + " ")]
        return float(found[0].split()[-1]) if found else 0.0

    search = 'ace_requests_total{route="/api/search",status="200"}'
    missing = 'ace_requests_total{route="/api/items/{item_id}",status="404"}'
    assert count(search, text) == count(search, before) + 1
    assert count(missing, text) == count(missing, before) + 1
    assert "0" * 64 not in text and 'ace_request_seconds_bucket{le="0.1",route=' in text
    assert count('ace_version_served{version="v000002"}', text) == 1.0
    assert 0 < count("ace_build_age_seconds", text) < 86_400
