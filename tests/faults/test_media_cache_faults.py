"""The service's media caches (STORE/renditions/, STORE/thumbs/) hold only what it made: a link
or other non-regular file planted there is removed (never its target) and remade, a kept
rendition that no longer probes is remade, every sound the decoders read plays, and a file
that cannot be made playable is refused without naming a server path."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ace_index.storage.store import Store

SERVER_PATH = re.compile(r"(?<![\w<])/[^\s'\"(),;]+")  # what flows.serve.guard.public hides


@pytest.fixture
def media(tmp_path):
    """/media, /play and /thumb of media_routes over items added by ``media.add(path,
    modality)``: a stand-in for a served version (one source, tmp_path/src)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ace_index.flows.serve.media import media_routes

    src, items = tmp_path / "src", {}
    src.mkdir()

    def add(path: Path, modality: str) -> str:
        item_id = hashlib.sha256(path.read_bytes()).hexdigest()
        items[item_id] = {"item_id": item_id, "location": str(path), "modality": modality,
                          "source_id": "s", "bytes": path.stat().st_size}  # fmt: skip
        return item_id

    loaded = SimpleNamespace(item=items.get, sources={"s": SimpleNamespace(location=str(src))})
    holder = SimpleNamespace(get=lambda version=None: loaded)
    app = FastAPI()
    media_routes(app, holder, str(tmp_path / "store"), 64 << 20)
    with TestClient(app) as client:
        yield SimpleNamespace(client=client, add=add, src=src, store=Store(tmp_path / "store"))


def _sound(path: Path, subtype: str = "PCM_16", fmt: str = "WAV") -> Path:
    import soundfile as sf

    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
    sf.write(path, tone, 16_000, subtype=subtype, format=fmt)
    return path


def _plays(data: bytes, tmp_path: Path, seconds: float = 1.0) -> bool:
    """An MP4 whose sound decodes in full: ``seconds`` of it, without an error."""
    import av

    (tmp_path / "got.mp4").write_bytes(data)
    try:
        with av.open(str(tmp_path / "got.mp4")) as c:
            got = sum(f.samples / f.sample_rate for f in c.decode(audio=0))
    except av.FFmpegError:
        return False
    return abs(got - seconds) < 0.1


def _plant(where: Path, kind: str, target: Path) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    if kind == "link":
        os.symlink(target, where)
    else:
        os.mkfifo(where)  # opened for reading, it would wait for a writer forever


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_link_or_fifo_planted_as_a_kept_rendition_is_removed_and_remade(media, tmp_path, kind):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for the web\n")
    item_id = media.add(_sound(media.src / "tone.aiff", fmt="AIFF"), "audio")
    kept = media.store.renditions_dir / f"{item_id}.mp4"
    _plant(kept, kind, secret)
    r = media.client.get(f"/play/{item_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mp4"
    assert b"not for the web" not in r.content and _plays(r.content, tmp_path)
    assert not kept.is_symlink() and kept.is_file() and kept.read_bytes() == r.content
    assert secret.read_bytes() == b"not for the web\n"  # the link went, not its target


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_link_or_fifo_planted_as_a_cached_thumbnail_is_removed_and_redrawn(media, tmp_path, kind):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for the web\n")
    item_id = media.add(_sound(media.src / "tone.wav"), "audio")
    cached = media.store.thumbnail_file(item_id)
    _plant(cached, kind, secret)
    r = media.client.get(f"/thumb/{item_id}")
    assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"
    assert not cached.is_symlink() and cached.read_bytes() == r.content
    assert secret.read_bytes() == b"not for the web\n"


def test_a_truncated_kept_rendition_is_remade_not_served(media, tmp_path):
    item_id = media.add(_sound(media.src / "tone.aiff", fmt="AIFF"), "audio")
    whole = media.client.get(f"/play/{item_id}").content
    kept = media.store.renditions_dir / f"{item_id}.mp4"
    assert kept.read_bytes() == whole and _plays(whole, tmp_path)
    kept.write_bytes(whole[: len(whole) * 2 // 3])  # a crash or a full disk mid-copy
    r = media.client.get(f"/play/{item_id}")
    assert r.status_code == 200 and len(r.content) == len(whole) and _plays(r.content, tmp_path)
    assert kept.read_bytes() == r.content


def test_a_rendition_is_sent_in_the_ranges_a_player_asks_for(media, tmp_path):
    """/play's rendition (sent from its open descriptor) answers Range requests as /media's
    FileResponse does: a player seeks with them."""
    item_id = media.add(_sound(media.src / "tone.aiff", fmt="AIFF"), "audio")
    whole = media.client.get(f"/play/{item_id}")
    size, got = len(whole.content), whole.headers
    assert whole.status_code == 200 and _plays(whole.content, tmp_path)
    assert got["accept-ranges"] == "bytes" and got["content-length"] == str(size)
    for asked, want in [("bytes=10-19", (10, 20)), ("bytes=-5", (size - 5, size)),
                        ("bytes=3-", (3, size)), (f"bytes=0-{size + 99}", (0, size))]:  # fmt: skip
        r = media.client.get(f"/play/{item_id}", headers={"Range": asked})
        assert r.status_code == 206 and r.content == whole.content[want[0] : want[1]], asked
        assert r.headers["content-range"] == f"bytes {want[0]}-{want[1] - 1}/{size}"
    past = media.client.get(f"/play/{item_id}", headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert media.client.get(f"/play/{item_id}", headers={"Range": "bytes=9-2"}).status_code == 400
    stale = {"Range": "bytes=0-9", "If-Range": '"another-version"'}  # sends the whole file
    assert media.client.get(f"/play/{item_id}", headers=stale).content == whole.content
    again = {"Range": "bytes=0-9", "If-Range": got["etag"]}
    assert media.client.get(f"/play/{item_id}", headers=again).status_code == 206


def test_the_media_routes_override_no_private_starlette_member():
    """A private member of Starlette's responses (``FileResponse._open_file`` was overridden to
    send from a descriptor) may change in any release: the service uses its public API."""
    import ast
    import inspect

    import starlette.responses

    private = {n for _, cls in inspect.getmembers(starlette.responses, inspect.isclass)
               for n in vars(cls) if n.startswith("_") and not n.startswith("__")}  # fmt: skip
    serve = Path(__file__).resolve().parents[2] / "flows" / "serve"
    used = set()
    for f in serve.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            name = getattr(node, "attr", None) or getattr(node, "name", None)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Attribute)):
                used |= {(f.name, name)} & {(f.name, n) for n in private}
    assert not used


@pytest.mark.parametrize("subtype", ["MS_ADPCM", "IMA_ADPCM", "NMS_ADPCM_32"])
def test_every_adpcm_wav_the_decoders_read_plays(media, tmp_path, subtype):
    from ace_core.media.audio_decoding import decode_audio

    wav = _sound(media.src / "adpcm.wav", subtype)
    assert decode_audio(str(wav)).meta["duration_s"] > 0.9  # indexed as a sound
    r = media.client.get(f"/play/{media.add(wav, 'audio')}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/mp4" and _plays(r.content, tmp_path)


def test_a_file_that_cannot_be_played_is_refused_without_a_server_path(media, tmp_path):
    from ace_core.media.renditions import write_rendition

    whole = tmp_path / "whole.mp4"
    write_rendition(_sound(tmp_path / "tone.aiff", fmt="AIFF"), whole)
    cut = media.src / "cut.mp4"
    cut.write_bytes(b"\0\0\0\x18ftypmp42" + whole.read_bytes()[200:900])
    r = media.client.get(f"/play/{media.add(cut, 'audio')}")
    assert r.status_code == 415
    detail = r.json()["detail"]
    assert not SERVER_PATH.search(detail) and ".tmp" not in detail and "cut.mp4" not in detail


def test_decoder_messages_name_no_server_path(tmp_path):
    """What the decoders say of a file they cannot read (kept in items, sent back for an
    example given to search by) names the file, never the folder it is in: decord named the
    server's temporary copy of an upload unquoted."""
    from fault_helpers import cut_mp4

    from ace_core.media.decoding import DecodeError, decode_video

    cut = tmp_path / "ace-example-x1y2"
    cut.write_bytes(cut_mp4(tmp_path / "clip.mp4"))
    with pytest.raises(DecodeError) as e:
        decode_video(str(cut), n_frames=2)
    assert not SERVER_PATH.search(str(e.value)) and str(tmp_path) not in str(e.value)
