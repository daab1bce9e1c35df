"""Real benchmark files in their official formats (../shared/realdata): COCO 2017 captions
JSON and a Clotho CSV (UTF-8 and legacy encodings) import, and the real media index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ace_core.caption_formats import convert
from ace_core.errors import AceInputError

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"


@pytest.fixture(scope="module")
def realdata() -> Path:
    if not (REALDATA / "coco-mini").is_dir() or not (REALDATA / "clotho-mini").is_dir():
        pytest.skip(f"../shared/realdata not found at {REALDATA} (only present in CI and dev)")
    return REALDATA


def _coco(realdata, split):
    src = realdata / "coco-mini" / "annotations" / f"captions_{split}2017.json"
    return convert("coco", [(str(src), None)], path_template=f"{split}2017/{{file_name}}")


def test_official_coco_captions_json_imports_with_its_split(realdata):
    val, train = _coco(realdata, "val"), _coco(realdata, "train")
    assert (len(val), len(train)) == (79, 80)  # the other 80 val photos have no caption
    assert {r["split"] for r in val} == {"test"} and {r["split"] for r in train} == {"train"}
    assert all(len(r["captions"]) >= 5 for r in val + train)
    assert all((realdata / "coco-mini" / r["path"]).is_file() for r in val + train)


def test_clotho_csv_imports_in_utf8_and_in_a_legacy_encoding(realdata, tmp_path):
    src = realdata / "clotho-mini" / "clotho_captions_evaluation.csv"
    records = convert("clotho", [(str(src), "test")])
    assert len(records) == 7 and all(len(r["captions"]) == 5 for r in records)
    assert all((realdata / "clotho-mini" / r["path"]).is_file() for r in records)  # spaces too
    legacy = tmp_path / "legacy.csv"  # upstream Clotho ships cp949; a Korean note shows it
    text = (
        src.read_text(encoding="utf-8")
        .replace("\n", ",소리\n", 1)
        .replace("caption_5", "caption_5,note", 1)
    )
    legacy.write_bytes(text.encode("cp949"))
    assert convert("clotho", [(str(legacy), "test")]) == records  # detected
    with pytest.raises(AceInputError, match="not utf-8 .* try another --encoding"):
        convert("clotho", [(str(legacy), "test")], encoding="utf-8")
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"file_name,caption_1\nx.wav,\xff\xfe\xff\n")
    with pytest.raises(AceInputError, match="--encoding"):
        convert("clotho", [(str(broken), "test")])


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_the_real_media_index_with_their_captions(prefect_harness, realdata, tmp_path, capsys):
    from ace_index.flows.cli import main

    corpus = tmp_path / "corpus"
    for split in ("val", "train"):
        shutil.copytree(realdata / "coco-mini" / f"{split}2017", corpus / f"{split}2017")
    shutil.copytree(realdata / "clotho-mini", corpus / "clotho")
    parts = []
    coco = realdata / "coco-mini" / "annotations"
    for argv in (  # one import per format, each file with its split and folder
        ["coco", f"{coco / 'captions_train2017.json'}@train2017",
         f"{coco / 'captions_val2017.json'}@val2017"],
        ["clotho", f"{realdata / 'clotho-mini' / 'clotho_captions_evaluation.csv'}=test@clotho"],
    ):  # fmt: skip
        out = tmp_path / f"{len(parts)}.jsonl"
        assert main(["import-captions", *argv, "--out", str(out)]) == 0
        parts.append(out.read_text())
    (corpus / "captions.jsonl").write_text("".join(parts))
    (corpus / "clotho" / "clotho_captions_evaluation.csv").unlink()
    cfg = tmp_path / "fast.json"
    cfg.write_text(json.dumps({
        "train": {"epochs": 2, "eval_every": 2, "dense": {"epochs": 3}},
        "ids": {"rqvae": {"max_epochs": 2}},
        "embed": {"image": {"model": "ace-tiny-vit", "pretrained": "random"},
                  "audio": {"checkpoint": "random"}, "shard_size": 128},
    }))  # fmt: skip
    capsys.readouterr()
    code = main(["index", str(corpus), "--store", str(tmp_path / "s"), "--config", str(cfg),
                 "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    report = json.loads(out.out)
    assert report["items"]["ok"] == 159 + 80 + 7 and report["items"]["failed"] == 0
    ev = report["eval"]
    assert ev["protocol"] == "unseen" and ev["queries"]["test"] == (79 + 7) * 5  # val -> test
    assert ev["queries"]["train"] >= 80 * 4  # COCO train trains
