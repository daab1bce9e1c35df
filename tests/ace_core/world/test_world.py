"""The scenes world: deterministic per seed, distinct at 100k items, streamed to disk with flat
memory, and captions that name the whole description in varied words."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from ace_core.world import vocab
from ace_core.world.corpus import (
    descriptions,
    draw_item,
    shared_description_share,
    write_world_corpus,
)
from ace_index.flows.cli import main


@pytest.mark.slow  # about 60 s for the three: `make test-slow` (CI runs it)
@pytest.mark.parametrize("modality", ["image", "audio", "video"])
def test_under_one_percent_of_100k_items_share_their_full_description(modality):
    stats = shared_description_share(descriptions(2027, modality, 100_000))
    assert stats["items"] == 100_000 and stats["shared_share"] < 0.01, stats


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    counts = {"image": 3, "audio": 2, "video": 1}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_world_corpus(tmp_path / name, counts, seed=seed)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 7  # six media files and captions.jsonl
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a/captions.jsonl").read_text() != (
        tmp_path / "c/captions.jsonl"
    ).read_text()


def test_an_item_is_the_same_described_alone_or_rendered():
    item, caps, media = draw_item(11, "image", 42)
    again, caps_again, nothing = draw_item(11, "image", 42, render=False)
    assert item == again and caps == caps_again and nothing is None and media.shape == (224, 224, 3)


def _peak_bytes_writing(folder, n: int) -> int:
    tracemalloc.start()
    write_world_corpus(folder, {"image": n}, seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_a_corpus_streams_to_disk_with_memory_flat_in_its_size(tmp_path):
    lines_seen = []

    def progress(done, total):  # captions.jsonl already holds the items written so far
        lines_seen.append((done, (tmp_path / "s/captions.jsonl").stat().st_size > 0))

    write_world_corpus(tmp_path / "s", {"image": 500, "audio": 1}, seed=3, progress=progress)
    assert lines_seen[0] == (500, True) and lines_seen[-1] == (501, True)
    small, large = _peak_bytes_writing(tmp_path / "m", 40), _peak_bytes_writing(tmp_path / "l", 400)
    assert large < 1.5 * small, (small, large)


def _synonyms(table: dict, name: str) -> tuple[str, ...]:
    entry = table[name]
    return entry[1] if isinstance(entry[0], tuple | float) else entry


def test_every_caption_names_every_object_and_the_background():
    for i in range(100):
        picture, caps, _ = draw_item(8, "image", i, render=False)
        assert len(caps) >= 5 and len(set(caps)) == len(caps)
        for cap in caps:
            assert any(w in cap for w in vocab.BACKGROUNDS[picture.background])
            for thing in picture.things:
                assert any(w in cap for w in _synonyms(vocab.COLORS, thing.color)), (cap, thing)
                assert any(w in cap for w in vocab.SHAPES[thing.shape]), (cap, thing)
                assert any(w in cap for w in _synonyms(vocab.CELLS, thing.cell)), (cap, thing)


@pytest.mark.parametrize("modality", ["image", "audio", "video"])
def test_captions_of_an_item_differ_in_words_not_only_in_order(modality):
    pairs = same = 0
    for i in range(200):
        caps = draw_item(9, modality, i, render=False)[1]
        bags = [Counter(c.replace(",", " ").replace(";", " ").split()) for c in caps]
        for a in range(len(bags)):
            for b in range(a + 1, len(bags)):
                pairs += 1
                same += bags[a] == bags[b]
    assert same / pairs < 0.02, (same, pairs)


def test_sample_corpus_writes_either_world(tmp_path, capsys):
    assert main(["sample-corpus", str(tmp_path / "s"), "--images", "2", "--audio", "1",
                 "--videos", "1", "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "sample-corpus: 4/4 items written" in captured.err  # a stage line off a terminal too
    assert out["world"] == "scenes" and out["images"] == 2 and out["captions"] >= 20
    assert (tmp_path / "s/images/img_000001.png").is_file()
    assert main(["sample-corpus", str(tmp_path / "c"), "--world", "classic", "--images", "1",
                 "--audio", "0", "--videos", "0", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["world"] == "classic"
    assert (tmp_path / "c/images/img_0000.png").is_file()
    rec = json.loads((tmp_path / "s/captions.jsonl").read_text().splitlines()[-1])
    assert rec["path"] == "video/vid_000000.mp4" and np.all([len(c) > 20 for c in rec["captions"]])


def test_videos_are_the_same_bytes_every_time(tmp_path):
    """x264's assembly made 2 to 7 videos in 25 differ between two writes of one seed (so
    their item IDs, and a bench's splits, differed between runs); the writers turn it off."""
    for name in ("a", "b"):
        write_world_corpus(tmp_path / name, {"video": 24}, seed=7)
    for rel in sorted((tmp_path / "a").rglob("*.mp4")):
        other = tmp_path / "b" / rel.relative_to(tmp_path / "a")
        assert rel.read_bytes() == other.read_bytes(), rel.name
