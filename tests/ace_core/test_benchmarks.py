import json

import pytest

from ace_core.caption_formats import convert
from ace_core.errors import AceInputError


def test_karpathy_json_keeps_official_splits(tmp_path):
    src = tmp_path / "dataset_coco.json"
    src.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "filepath": "val2014",
                        "filename": "a.jpg",
                        "split": "test",
                        "sentences": [{"raw": "A dog. "}, {"raw": "A puppy."}],
                    },
                    {
                        "filepath": "train2014",
                        "filename": "b.jpg",
                        "split": "restval",
                        "sentences": [{"raw": "A cat."}],
                    },
                    {"filename": "c.jpg", "split": "val", "sentences": [{"raw": "A bird."}]},
                ]
            }
        )
    )
    recs = convert("karpathy", [(str(src), None)])
    assert recs == [
        {"path": "c.jpg", "captions": ["A bird."], "split": "val"},
        {"path": "train2014/b.jpg", "captions": ["A cat."], "split": "train"},
        {"path": "val2014/a.jpg", "captions": ["A dog.", "A puppy."], "split": "test"},
    ]


def test_clotho_csv_one_file_per_split(tmp_path):
    dev, ev = tmp_path / "dev.csv", tmp_path / "eval.csv"
    header = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    dev.write_text(header + "x.wav,rain falls,water drips,a storm,wet street,thunder\n")
    ev.write_text(header + '"y, z.wav",a dog barks,barking,"a dog, barking",dog,woof\n')
    recs = convert("clotho", [(str(dev), "train"), (str(ev), "evaluation")])
    assert [(r["path"], r["split"], len(r["captions"])) for r in recs] == [
        ("x.wav", "train", 5),
        ("y, z.wav", "test", 5),
    ]
    with pytest.raises(AceInputError, match="a split is needed"):
        convert("clotho", [(str(dev), None)])


def test_audiocaps_csv_groups_captions_per_clip(tmp_path):
    src = tmp_path / "test.csv"
    src.write_text(
        "audiocap_id,youtube_id,start_time,caption\n1,abc,30,a car passes\n"
        "2,abc,30,engine noise\n3,def,0,birds sing\n"
    )
    recs = convert("audiocaps", [(str(src), "test")], path_template="{youtube_id}.wav")
    assert recs == [
        {"path": "abc.wav", "captions": ["a car passes", "engine noise"], "split": "test"},
        {"path": "def.wav", "captions": ["birds sing"], "split": "test"},
    ]


def test_msrvtt_json(tmp_path):
    src = tmp_path / "train_val_videodatainfo.json"
    src.write_text(
        json.dumps(
            {
                "videos": [
                    {"video_id": "video0", "split": "train"},
                    {"video_id": "video1", "split": "validate"},
                ],
                "sentences": [
                    {"video_id": "video0", "caption": "a man cooks"},
                    {"video_id": "video1", "caption": "a race"},
                    {"video_id": "video0", "caption": "cooking show"},
                ],
            }
        )
    )
    recs = convert("msrvtt", [(str(src), None)])
    assert recs == [
        {"path": "video0.mp4", "captions": ["a man cooks", "cooking show"], "split": "train"},
        {"path": "video1.mp4", "captions": ["a race"], "split": "val"},
    ]


def test_malformed_input_is_a_clear_error(tmp_path):
    src = tmp_path / "bad.json"
    src.write_text(json.dumps({"nothing": []}))
    with pytest.raises(AceInputError, match="not a valid karpathy file"):
        convert("karpathy", [(str(src), None)])


def test_cli_writes_a_corpus_captions_file(tmp_path, capsys):
    from ace_index.flows.cli import main

    src = tmp_path / "dev.csv"
    src.write_text("file_name,caption_1\nx.wav,rain\n")
    out = tmp_path / "captions.jsonl"
    assert main(["import-captions", "clotho", f"{src}=train", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"] == {"train": 1}
    assert json.loads(out.read_text()) == {"path": "x.wav", "captions": ["rain"], "split": "train"}
