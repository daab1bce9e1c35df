"""Options shared by several commands, and the typed configs built from them once."""

from __future__ import annotations

import argparse
import json
import os

from ace_index.query.request import PATH_HELP, PATHS

CONFIG_MAX_BYTES = 1 << 20  # a --config file


EXIT_DAMAGED = 3  # the store's files are not what it wrote (`ace verify` names the file)


class UsageError(Exception):
    """Bad usage or input: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """No abbreviations: a misspelled or shortened option is an error, never a guess."""

    def __init__(self, *a, **kw):
        kw.setdefault("allow_abbrev", False)
        super().__init__(*a, **kw)


def _given(args, name: str):
    return getattr(args, name, None)


def embed_config_from_args(args, base=None):
    """EmbedConfig: ``base`` (default settings or --config) with the flags that were given."""
    from dataclasses import replace

    check_weight_files(_given(args, "image_weights"), _given(args, "audio_checkpoint"))
    from ace_core.media.embed_config import EmbedConfig, image_embed_dim  # torch: after the checks

    cfg = base or EmbedConfig()
    for name in ("batch_size", "workers", "shard_size"):
        if _given(args, name) is not None and getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    image, audio, pipeline = cfg.image, cfg.audio, cfg.pipeline
    if _given(args, "image_model") is not None:
        image = replace(image, model=args.image_model)
    if _given(args, "image_weights") is not None:
        image = replace(image, pretrained=_absolute_if_file(args.image_weights))
    if _given(args, "audio_model") is not None:
        audio = replace(audio, model=args.audio_model)
    if _given(args, "audio_checkpoint") is not None:
        audio = replace(audio, checkpoint=_absolute_if_file(args.audio_checkpoint))
    if _given(args, "batch_size") is not None:
        pipeline = replace(pipeline, batch_size=args.batch_size)
    if _given(args, "workers") is not None:
        pipeline = replace(pipeline, workers=args.workers)
    shard_size = args.shard_size if _given(args, "shard_size") is not None else cfg.shard_size
    image_embed_dim(image)  # an unknown model name fails here, before any flow starts
    check_weight_files(image.pretrained, audio.checkpoint)
    return replace(cfg, image=image, audio=audio, pipeline=pipeline, shard_size=shard_size)


def _absolute_if_file(weights: str) -> str:
    """A local weights file is recorded by absolute path: queries and ingests run from other
    folders and must load the same towers."""
    return os.path.abspath(weights) if os.path.isfile(weights) else weights


def check_weight_files(image_weights: str | None, audio_checkpoint: str | None) -> None:
    """A weights path that does not exist is an error before any work (an image tag such as
    'laion2b_s34b_b79k' has no path separator and no extension)."""
    looks_like_path = image_weights and (
        os.sep in image_weights or os.path.splitext(image_weights)[1]
    )
    if looks_like_path and not os.path.isfile(image_weights):
        raise UsageError(f"--image-weights file not found: {image_weights}")
    from ace_core.media.weights import DEFAULT_WEIGHTS, RANDOM_WEIGHTS

    named = (None, DEFAULT_WEIGHTS, RANDOM_WEIGHTS)
    if audio_checkpoint not in named and not os.path.isfile(audio_checkpoint):
        raise UsageError(f"--audio-checkpoint file not found: {audio_checkpoint}")


def add_embed_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("embedding")
    g.add_argument(
        "--image-model",
        default=None,
        help="open_clip model name, or the shipped 'ace-tiny-clip' / 'ace-tiny-vit' "
        "(default ViT-B-32)",
    )
    g.add_argument(
        "--image-weights",
        default=None,
        help="open_clip pretrained tag, local checkpoint, or 'random' (explicit random init); "
        "default: the model's standard weights where cached",
    )
    g.add_argument(
        "--audio-model", default=None, help="laion-clap audio model (HTSAT-tiny) or ace-tiny-clap"
    )
    g.add_argument(
        "--audio-checkpoint",
        default=None,
        help="local checkpoint or 'random' (explicit random init); default: the LAION-CLAP "
        "general checkpoint where cached",
    )
    g.add_argument("--batch-size", type=int, default=None, help="items per model call (32)")
    g.add_argument("--workers", type=int, default=None, help="decoding threads (2)")
    g.add_argument("--shard-size", type=int, default=None, help="files per shard (2000)")
    add_dask_options(p)


def add_dask_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed embedding (Dask)")
    x = g.add_mutually_exclusive_group()
    x.add_argument(
        "--dask-address",
        default=None,
        metavar="ADDR",
        help="embed shards on the Dask scheduler at ADDR (tcp://host:8786)",
    )
    x.add_argument(
        "--dask-local",
        type=int,
        default=None,
        metavar="N",
        help="embed shards on N local Dask worker processes",
    )


def shard_runner_from_args(args):
    """Where embedding shards run (flows.embed.ShardRunner), from the Dask options."""
    from ace_index.flows.embed import ShardRunner

    address, local = getattr(args, "dask_address", None), getattr(args, "dask_local", None)
    if local is not None and local <= 0:
        raise UsageError("--dask-local must be a positive number of workers")
    return ShardRunner(dask_address=address, dask_workers=local)


def index_config_from_args(args, recorded=None):
    """The typed IndexConfig, built once: the --config JSON file, else ``recorded`` (the
    configuration of the store's LATEST) or the defaults; then the explicit flags."""
    from dataclasses import replace

    from ace_core.bounded_read import one_reason, read_text_bounded
    from ace_core.config_io import from_dict
    from ace_core.index_config import IndexConfig

    base = recorded or IndexConfig()
    if args.config:
        try:
            data = json.loads(read_text_bounded(args.config, CONFIG_MAX_BYTES))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read --config {args.config}: {one_reason(e)}") from e
        if not isinstance(data, dict):
            raise UsageError(f"--config {args.config} must hold a JSON object of settings")
        base = from_dict(IndexConfig, data)
    ids, train, retriever = base.ids, base.train, base.retriever
    if args.k is not None:
        ids = replace(ids, kmeans=replace(ids.kmeans, k=args.k))
    if args.levels is not None:
        ids = replace(ids, rqvae=replace(ids.rqvae, levels=args.levels))
    if args.codebook_size is not None:
        ids = replace(ids, rqvae=replace(ids.rqvae, codebook_size=args.codebook_size))
    if args.epochs is not None:
        train = replace(train, epochs=args.epochs)
    if args.examples_per_item is not None:
        if args.examples_per_item < 0:
            raise UsageError("--examples-per-item must be >= 0 (0: no budget but the step cap)")
        train = replace(train, examples_per_item=args.examples_per_item or None)
    train = _train_workers_from_args(args, train)
    if args.max_train_steps is not None:
        if args.max_train_steps < 0:
            raise UsageError("--max-train-steps must be >= 0 (0: no cap)")
        steps = args.max_train_steps or None  # 0: no cap
        train = replace(train, max_steps=steps, dense=replace(train.dense, max_steps=steps))
    if args.encoder is not None:
        retriever = replace(retriever, encoder_path=args.encoder)
    return checked(
        replace(
            base,
            embed=embed_config_from_args(args, base.embed),
            ids=ids,
            train=train,
            retriever=retriever,
            ablations=base.ablations or args.ablations,
        )
    )


def _train_workers_from_args(args, train):
    """``--train-workers`` / ``--train-nodes`` / ``--train-rendezvous`` into TrainConfig."""
    from dataclasses import replace

    for flag in ("train_workers", "train_nodes"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be 1 or more")
    if args.train_nodes and args.train_nodes > 1 and not args.train_rendezvous:
        raise UsageError("--train-nodes above 1 needs --train-rendezvous HOST:PORT")
    if not (args.train_workers or args.train_nodes or args.train_rendezvous):
        return train  # nothing asked (and a --config's train is checked as it is)
    return replace(
        train,
        workers=args.train_workers or train.workers,
        nodes=args.train_nodes or train.nodes,
        rendezvous=args.train_rendezvous or train.rendezvous,
    )


def checked(config):
    """The config after its typed schema check (ace_core.config_check), before any work."""
    from ace_core.config_check import check_config

    check_config(config)
    return config


def add_path_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", choices=PATHS, default="auto", help=PATH_HELP)


def add_index_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("semantic IDs and retriever")
    g.add_argument("--config", default=None, help="JSON file with IndexConfig settings")
    g.add_argument("--k", type=int, default=None, help="coarse clusters (default: automatic)")
    g.add_argument("--levels", type=int, default=None, help="RQ-VAE levels (default 3)")
    g.add_argument("--codebook-size", type=int, default=None, help="codes per level (default 256)")
    g.add_argument("--epochs", type=int, default=None, help="retriever training epochs (max)")
    g.add_argument(
        "--examples-per-item",
        type=float,
        default=None,
        metavar="X",
        help="the retriever's training budget: X training examples per item (40; training "
        "stops earlier once validation has flattened)",
    )
    g.add_argument(
        "--max-train-steps",
        type=int,
        default=None,
        metavar="N",
        help="a cap on each retriever model's optimisation steps (none; 0: no cap)",
    )
    g.add_argument(
        "--train-workers",
        type=int,
        default=None,
        metavar="N",
        help="train the retriever on N data-parallel processes (torch DDP; 1)",
    )
    g.add_argument(
        "--train-nodes",
        type=int,
        default=None,
        metavar="M",
        help="machines that train together, each running torchrun (docs/DESIGN.md; 1)",
    )
    g.add_argument(
        "--train-rendezvous",
        default=None,
        metavar="HOST:PORT",
        help="the rendezvous every training machine reaches (with --train-nodes)",
    )
    g.add_argument("--encoder", default=None, help="local Hugging Face text encoder folder")
    g.add_argument("--ablations", action="store_true", help="also train the ablation models")
    g.add_argument(
        "--refit",
        action="store_true",
        help="fit new IDs even where LATEST's could be kept (every ID may change)",
    )
    g = p.add_argument_group("removals (items of LATEST whose files vanished)")
    g.add_argument(
        "--allow-remove", action="store_true", help="publish even if indexed items would go"
    )
    g.add_argument(
        "--max-remove", type=int, default=None, metavar="N", help="allow up to N removals (0)"
    )


def require_dir(path: str) -> None:
    if not os.path.isdir(path):
        raise UsageError(f"corpus directory not found: {path}")
