"""`ace serve`: the search service and web page over a store.

FastAPI on uvicorn: FastAPI for its request validation and the OpenAPI page at /docs (both
come from the same type hints), uvicorn because Prefect already ships it. One process holds
the served version in memory; concurrent searches are micro-batched into one beam search
(bounded wait); a watcher loads a new LATEST in the background and swaps it in atomically
(searches already queued finish on the version they started with; a failed load keeps the
old version serving and says why in /healthz).
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from ace_core.retrieval.retrieval_model import MAX_QUERY_CHARS
from storage import catalog
from storage.audit import audit
from storage.store import Store, StoreError

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_K = 100
MEDIA_TYPES = {"image": "image/", "audio": "audio/", "video": "video/"}


class VersionHolder:
    """The served version (LATEST), swapped when LATEST moves, plus pinned older versions."""

    def __init__(self, store: str, watch_s: float = 2.0):
        self.store, self.watch_s = store, watch_s
        self.current: catalog.VersionModel | None = None
        self.pinned: dict[str, catalog.VersionModel] = {}
        self.last_error: str | None = None
        self.loading = False
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        self.refresh()
        threading.Thread(target=self._watch, name="ace-serve-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_s):
            self.refresh()

    def refresh(self) -> None:
        """Load LATEST if it moved; on failure keep serving what is loaded."""
        try:
            latest = Store(self.store).latest()
            if latest is None or (self.current and self.current.version == latest):
                return
            self.loading = True
            loaded = catalog.load_version_model(self.store, latest)
            if loaded.default_path != "captions":
                loaded.text_spaces()  # the text towers load before the swap, not on a query
            self.current, self.last_error = loaded, None  # one reference swap
            logger.info("serving %s", latest)
        except Exception as e:  # noqa: BLE001 - reported in /healthz, old version kept
            self.last_error = f"{type(e).__name__}: {e}"
            logger.warning("could not load the new version: %s", self.last_error)
        finally:
            self.loading = False

    def get(self, version: str | None = None) -> catalog.VersionModel:
        current = self.current
        if current is None:
            raise HTTPException(503, self.last_error or f"no published version in {self.store}")
        if version in (None, "", current.version):
            return current
        try:
            name = Store(self.store).resolve(version)
        except StoreError as e:
            raise HTTPException(404, str(e)) from None
        with self._lock:
            if name not in self.pinned:
                if len(self.pinned) >= 2:
                    self.pinned.pop(next(iter(self.pinned)))
                self.pinned[name] = catalog.load_version_model(self.store, name)
            return self.pinned[name]


class SearchBatcher:
    """Concurrent searches in one batched beam search: a batch closes after ``max_batch``
    queries or ``max_wait_s`` after its first one."""

    def __init__(self, max_batch: int = 32, max_wait_s: float = 0.005):
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="ace-search")

    async def search(self, vm, text: str, k: int, dense: bool, modality=None) -> list[dict]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((vm, text, k, dense, future, modality))
        return await future

    async def run(self) -> None:
        self.queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            groups: dict[tuple, list] = {}
            for entry in batch:
                groups.setdefault((id(entry[0]), entry[3], entry[5]), []).append(entry)
            for group in groups.values():
                await self._answer(loop, group)

    async def _answer(self, loop, group: list) -> None:
        vm, dense, modality = group[0][0], group[0][3], group[0][5]
        k = max(e[2] for e in group)
        texts = [e[1] for e in group]
        try:
            rows = await loop.run_in_executor(
                self.executor,
                lambda: vm.search_many(texts, k, beam=max(10, k), dense=dense, modality=modality),
            )
        except Exception as e:  # noqa: BLE001 - each waiting request gets the error
            for entry in group:
                entry[4].set_exception(e)
            return
        for entry, row in zip(group, rows):
            entry[4].set_result(row[: entry[2]])


def _with_urls(result: dict, token: str | None) -> dict:
    tokens = [int(t) for t in result["sid"].split(".")]
    q = f"?token={token}" if token else ""
    out = {k: v for k, v in result.items() if k != "location"}  # server paths stay private
    out.update(
        coarse=tokens[0],
        fine=tokens[1:-1],
        suffix=tokens[-1],
        media_url=f"/media/{result['item_id']}{q}",
        thumb_url=f"/thumb/{result['item_id']}{q}",
    )
    return out


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise HTTPException(400, f"k must be between 1 and {MAX_K}, got {k}")


def _check_query(q: str, k: int) -> str:
    q = q.strip()
    if not q:
        raise HTTPException(400, "empty query: give some text to search for")
    if len(q) > MAX_QUERY_CHARS:
        raise HTTPException(413, f"query too long ({len(q)} characters, at most {MAX_QUERY_CHARS})")
    _check_k(k)
    return q


def create_app(
    store: str,
    *,
    token: str | None = None,
    watch_s: float = 2.0,
    max_wait_ms: float = 5.0,
    holder: VersionHolder | None = None,
) -> FastAPI:
    """The ASGI app over ``store`` (``holder``: a ready VersionHolder, for benchmarks)."""
    holder = holder or VersionHolder(store, watch_s)
    batcher = SearchBatcher(max_wait_s=max_wait_ms / 1000)

    async def lifespan(app):
        await asyncio.get_running_loop().run_in_executor(None, holder.start)
        task = asyncio.create_task(batcher.run())
        yield
        holder.stop()
        task.cancel()

    app = FastAPI(title="ACE Index", lifespan=lifespan, version=_version())
    app.state.holder, app.state.batcher = holder, batcher

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token and request.url.path not in ("/", "/healthz"):
            given = request.query_params.get("token") or request.headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if given != token:
                return JSONResponse({"detail": "a valid token is required"}, status_code=401)
        return await call_next(request)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # no stack trace in a response
        logger.exception("internal error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, 500)

    _search_routes(app, holder, batcher, token)
    _catalog_routes(app, holder, store)
    _media_routes(app, holder, store)
    return app


def _search_routes(app: FastAPI, holder: VersionHolder, batcher: SearchBatcher, token) -> None:
    @app.get("/api/search")
    async def search(
        q: str = Query(..., description="the text query"),
        k: int = 10,
        modality: str | None = Query(None, pattern="^(image|audio|video)$"),
        version: str | None = None,
        dense: bool = False,
    ):
        q = _check_query(q, k)
        vm = holder.get(version)
        rows = await batcher.search(vm, q, min(len(vm.model.item_ids), k), dense, modality)
        return {"query": q, "version": vm.version, "mode": "dense" if dense else "generative",
                "path": None if dense else vm.default_path,  # the version's auto query path
                "results": [_with_urls(r, token) for r in rows]}  # fmt: skip

    @app.get("/api/items/{item_id}")
    def item(item_id: str, version: str | None = None):
        found = holder.get(version).item(item_id)
        if found is None:
            raise HTTPException(404, f"item {item_id[:64]!r} is not in the served version")
        found.pop("location", None)
        return found

    @app.get("/api/similar/{item_id}")
    def similar(item_id: str, k: int = 10, version: str | None = None):
        _check_k(k)
        vm = holder.get(version)
        if item_id not in vm.row_of:
            raise HTTPException(404, f"item {item_id[:64]!r} is not in the served version")
        return {"item_id": item_id, "version": vm.version,
                "results": [_with_urls(r, token) for r in vm.similar(item_id, k)]}  # fmt: skip


def _catalog_routes(app: FastAPI, holder: VersionHolder, store: str) -> None:
    def guarded(fn, *args):
        try:
            return fn(*args)
        except StoreError as e:
            raise HTTPException(404, str(e)) from None

    @app.get("/api/versions")
    def versions():
        return guarded(catalog.list_versions, store)

    @app.get("/api/audit")
    def audit_versions(from_: str | None = Query(None, alias="from"), to: str | None = None):
        return guarded(audit, store, from_, to)

    @app.get("/api/eval")
    def evaluation(version: str | None = None):
        out = guarded(catalog.version_eval, store, version)
        out["ids"] = guarded(Store(store).manifest, out["version"]).get("ids")
        return out

    @app.get("/healthz")
    def healthz():
        current = holder.current
        return {"status": "ok" if current else "unavailable",
                "version": current.version if current else None,
                "loading": holder.loading, "last_error": holder.last_error}  # fmt: skip

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return (STATIC / "index.html").read_text()


def _media_routes(app: FastAPI, holder: VersionHolder, store: str) -> None:
    def indexed(item_id: str, version: str | None) -> dict:
        found = holder.get(version).item(item_id)  # by item id only, never a request path
        if found is None or not found.get("location"):
            raise HTTPException(404, f"item {item_id[:64]!r} is not in the served version")
        return found

    @app.get("/media/{item_id}")
    def media(item_id: str, version: str | None = None):
        found = indexed(item_id, version)
        if not Path(found["location"]).is_file():
            raise HTTPException(410, f"the file of {item_id[:12]} is no longer at its location")
        suffix = Path(found["location"]).suffix.lstrip(".").lower() or "octet-stream"
        kind = MEDIA_TYPES.get(found["modality"], "application/")
        return FileResponse(found["location"], media_type=kind + _subtype(suffix))  # HTTP Range

    @app.get("/thumb/{item_id}")
    def thumb(item_id: str, version: str | None = None):
        found = indexed(item_id, version)
        cached = Store(store).root / "thumbs" / f"{item_id}.jpg"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            data = make_thumbnail(found["location"], found["modality"])
            tmp = cached.with_suffix(f".tmp-{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(cached)
        return Response(cached.read_bytes(), media_type="image/jpeg",
                        headers={"cache-control": "max-age=86400"})  # fmt: skip


def _subtype(suffix: str) -> str:
    return {"jpg": "jpeg", "tif": "tiff", "mp3": "mpeg", "mpg": "mpeg", "mkv": "x-matroska",
            "m4a": "mp4", "wav": "wav", "ogg": "ogg"}.get(suffix, suffix)  # fmt: skip


def make_thumbnail(location: str, modality: str, size: int = 256) -> bytes:
    """A small JPEG: the image itself, a video's first sampled frame, an audio waveform."""
    from PIL import Image, ImageDraw

    from ace_core.media.decoding import decode_audio, decode_image, decode_video

    if modality == "image":
        im = decode_image(location).data
    elif modality == "video":
        im = Image.fromarray(decode_video(location, n_frames=1).data[0])
    else:
        samples = decode_audio(location, sample_rate=8000).data
        im = Image.new("RGB", (size, size // 2), "white")
        draw, mid = ImageDraw.Draw(im), size // 4
        cols = [abs(c).max(initial=0) for c in _chunks(samples, size)]
        peak = max(max(cols, default=0), 1e-6)
        for x, v in enumerate(cols):
            h = int(v / peak * (mid - 2))
            draw.line([(x, mid - h), (x, mid + h)], fill=(40, 90, 200))
    im = im.convert("RGB")
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _chunks(samples, n: int):
    step = max(1, len(samples) // n)
    return [samples[i : i + step] for i in range(0, step * n, step)][:n]


def _version() -> str:
    from ace_core import __version__

    return __version__


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(store: str, host: str = "127.0.0.1", port: int = 8765, token: str | None = None):
    """Run the service until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(store, token=token), host=host, port=port, log_level="warning")
