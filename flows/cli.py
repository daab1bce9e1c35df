"""The `ace` command line.

Exit codes: 0 success, 2 bad usage or input (one-line reason on stderr), 1 internal failure.
Every command takes --store and --json (machine-readable output on stdout).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from flows import _env  # noqa: F401  (environment before prefect/transformers imports)


class UsageError(Exception):
    """Bad usage or input: reported in one line, exit code 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from ace_core.errors import AceInputError
    from storage.store import StoreError

    return (UsageError, AceInputError, StoreError, FileNotFoundError, NotADirectoryError)


# ----------------------------------------------------------------------------- output


def emit(args, payload: Any, human: Callable[[Any], str]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(human(payload).rstrip("\n") + "\n")


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- config


def embed_config_from_args(args):
    from ace_core.encoders import AudioEncoderConfig, ImageEncoderConfig
    from ace_core.pipeline import EmbedConfig, PipelineConfig

    return EmbedConfig(
        image=ImageEncoderConfig(model=args.image_model, pretrained=args.image_weights),
        audio=AudioEncoderConfig(model=args.audio_model, checkpoint=args.audio_checkpoint),
        pipeline=PipelineConfig(batch_size=args.batch_size, workers=args.workers),
        shard_size=args.shard_size,
    )


def _add_embed_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("embedding")
    g.add_argument("--image-model", default="ViT-B-32",
                   help="open_clip model name, or the shipped tiny 'ace-tiny-vit' (default %(default)s)")
    g.add_argument("--image-weights", default=None,
                   help="open_clip pretrained tag or local checkpoint; none: random init")
    g.add_argument("--audio-model", default="HTSAT-tiny", help="laion-clap audio model")
    g.add_argument("--audio-checkpoint", default=None,
                   help="local laion-clap checkpoint; none: random init")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--workers", type=int, default=2, help="decoding threads")
    g.add_argument("--shard-size", type=int, default=2000, help="files per shard")


# ----------------------------------------------------------------------------- commands


def cmd_sample_corpus(args) -> int:
    from ace_core.synth import CorpusCounts, write_sample_corpus

    for name in ("images", "audio", "videos"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name} must be >= 0")
    info = write_sample_corpus(args.out, seed=args.seed,
                               counts=CorpusCounts(args.images, args.audio, args.videos))
    emit(args, info, lambda d: f"wrote {d['images']} images, {d['audio']} audio clips, "
                               f"{d['videos']} videos ({d['captions']} captions) to {d['path']}")
    return 0


def cmd_embed(args) -> int:
    from ace_core.config import to_dict
    from flows.embed import embed_corpus

    _require_dir(args.corpus)
    report = embed_corpus(args.corpus, args.store, to_dict(embed_config_from_args(args)))
    emit(args, report, _human_embed)
    return 0


def _human_embed(r: dict) -> str:
    mods = ", ".join(f"{m} {n}" for m, n in r["by_modality"].items()) or "none"
    lines = [
        f"{r['items']} media files: {r['ok']} embedded ({mods}), {r['failed']} failed, "
        f"{r['skipped']} non-media skipped, {r['duplicates']} duplicate paths",
        f"{r['shards']} shard(s), {r['shards_computed']} computed in this run "
        f"({r['embedded']} files); {r['seconds']:.1f} s, {r['items_per_s']} items/s",
    ]
    for err in r["caption_errors"][:10]:
        lines.append(f"warning: {err}")
    return "\n".join(lines)


def _require_dir(path: str) -> None:
    import os

    if not os.path.isdir(path):
        raise UsageError(f"corpus directory not found: {path}")


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default="./ace-store", help="index store (default %(default)s)")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(prog="ace", description="ACE generative cross-modal index")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sample-corpus", parents=[common], help="write a synthetic corpus")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--audio", type=int, default=24)
    p.add_argument("--videos", type=int, default=16)
    p.set_defaults(func=cmd_sample_corpus)

    p = sub.add_parser("embed", parents=[common], help="discover, decode and embed a corpus")
    p.add_argument("corpus")
    _add_embed_options(p)
    p.set_defaults(func=cmd_embed)

    for register in _EXTRA_COMMANDS:
        register(sub, common)
    return parser


_EXTRA_COMMANDS: list[Callable] = []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage and the reason
        return 2 if e.code not in (0, None) else 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("ace: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        print(f"ace: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - last resort: one line, details with -v
        logging.getLogger("ace").debug("internal failure", exc_info=True)
        print(f"ace: internal error: {type(e).__name__}: {e} (run with -v for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
