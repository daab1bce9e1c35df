"""Commands that make inputs: `ace sample-corpus`, `ace tiny-encoders`, `ace import-captions`."""

from __future__ import annotations

import json
import os

from ace_index.flows.cli import present
from ace_index.flows.cli.options import UsageError


def add_commands(sub, common) -> None:
    p = sub.add_parser("sample-corpus", parents=[common], help="write a synthetic corpus")
    p.add_argument("out", help="folder to write the corpus to")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--images", type=int, default=48, help="images to write (48)")
    p.add_argument("--audio", type=int, default=24, help="audio clips to write (24)")
    p.add_argument("--videos", type=int, default=16, help="videos to write (16)")
    p.add_argument(
        "--world",
        choices=["scenes", "classic"],
        default="scenes",
        help="scenes: several objects or sound events per item, distinct to 100k items "
        "(default; what the tiny encoders know); classic: the older one-object world",
    )
    p.set_defaults(func=cmd_sample_corpus)

    p = sub.add_parser(
        "tiny-encoders", parents=[common], help="train (or reuse) the small aligned encoders"
    )
    p.add_argument("out", help="folder for the weights (reused when it holds this build)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.set_defaults(func=cmd_tiny_encoders)
    _add_import_captions(sub, common)


def _add_import_captions(sub, common) -> None:
    what = "convert benchmark caption files to captions.jsonl"
    p = sub.add_parser("import-captions", parents=[common], help=what)
    p.add_argument("format", choices=["karpathy", "coco", "clotho", "audiocaps", "msrvtt"])
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SRC[=SPLIT][@FOLDER]",
        help="caption files, each with its split (CSV formats need one; COCO: from the file "
        "name, train2017 -> train, val2017 -> test) and the corpus folder its media are in",
    )
    p.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default=None,
        help="the split of every SRC that names none",
    )
    p.add_argument("--out", required=True, help="captions.jsonl to write (at the corpus root)")
    p.add_argument(
        "--path-template",
        default=None,
        help="media path from CSV/JSON fields, e.g. '{youtube_id}.wav' or 'val2017/{file_name}'",
    )
    p.add_argument(
        "--encoding", default=None, help="of CSV files (default: UTF-8, else detected: cp949)"
    )
    p.set_defaults(func=cmd_import_captions)


def cmd_sample_corpus(args) -> int:
    for name in ("images", "audio", "videos"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name} must be >= 0")
    if args.world == "classic":
        from ace_core.synth import CorpusCounts, write_sample_corpus

        counts = CorpusCounts(args.images, args.audio, args.videos)
        info = write_sample_corpus(args.out, seed=args.seed, counts=counts)
    else:
        from ace_core.world import write_world_corpus

        counts = {"image": args.images, "audio": args.audio, "video": args.videos}
        info = write_world_corpus(args.out, counts, seed=args.seed, progress=_progress)
    present.emit(args, {**info, "world": args.world}, present.sample_corpus)
    return 0


def _progress(done: int, total: int) -> None:
    present.stage_line(f"sample-corpus: {done}/{total} items written")


def cmd_tiny_encoders(args) -> int:
    from ace_core.tiny_encoders import TinyEncoderConfig, build_tiny_encoders

    config = TinyEncoderConfig(seed=args.seed)
    result = build_tiny_encoders(args.out, config, progress=present.stage_line)
    present.emit(args, result, present.tiny_encoders)
    return 0


def cmd_import_captions(args) -> int:
    from ace_core.caption_formats import convert

    sources = []
    for src in args.sources:
        src, _, folder = src.rpartition("@") if "@" in src else (src, "", "")
        path, _, split = src.partition("=")
        if not os.path.isfile(path):
            raise UsageError(f"caption file not found: {path}")
        sources.append((path, split or args.split, folder or None))
    records = convert(
        args.format, sources, path_template=args.path_template, encoding=args.encoding
    )
    with open(args.out, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    splits: dict[str, int] = {}
    for r in records:
        splits[r["split"]] = splits.get(r["split"], 0) + 1
    info = {
        "format": args.format,
        "out": args.out,
        "items": len(records),
        "captions": sum(len(r["captions"]) for r in records),
        "splits": splits,
    }
    present.emit(args, info, present.imported_captions)
    return 0
