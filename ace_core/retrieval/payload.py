"""What data-parallel training workers read and write (distributed.py), as files in one folder
(no pickle): arrays as .npy (memory-mapped when read), the decoder as safetensors, configs as
JSON, caption features as references to the feature store's memory-mapped files (or .npy
copies of in-memory ones); then the trained weights, rank 0's report and its progress lines.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from ace_core.config_io import from_dict, to_dict
from ace_core.retrieval.batches import Replay
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.model import IDDecoder, RetrieverConfig, Vocab
from ace_core.retrieval.text_features import TextFeatures
from ace_core.retrieval.validation import Validation
from ace_core.retrieval.zero_shot import TextSpace


def save_payload(folder: Path, args: dict) -> None:
    """train_generative's arguments (``args``; the trie is rebuilt from the IDs) as files."""
    decoder, cfg, val, replay = args["decoder"], args["cfg"], args["val"], args["replay"]
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    save_file(
        {k: v.to_dense() if v.is_sparse else v for k, v in state.items()},
        str(folder / "decoder.safetensors"),
    )
    arrays = {k: args[k] for k in ("train_items", "item_emb", "id_tokens")}
    meta = {
        "decoder": {"config": to_dict(decoder.cfg), "vocab": asdict(decoder.vocab), **decoder.dims},
        "train": to_dict(cfg),
        "validate_initial": args["validate_initial"],
        "train_feats": _save_features(folder, "train", args["train_feats"]),
    }
    if val is not None:
        meta["val"] = _save_validation(folder, val, arrays)
    if replay is not None:
        meta["replay"] = {
            "per_epoch_caps": replay.per_epoch_caps,
            "per_epoch_rows": replay.per_epoch_rows,
        }
        for name in ("new_caps", "old_caps", "new_rows", "old_rows"):
            arrays[f"replay_{name}"] = getattr(replay, name)
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(a))
    (folder / "payload.json").write_text(json.dumps(meta))


def _save_features(folder: Path, name: str, feats: TextFeatures) -> dict:
    parts = []
    for k, part in enumerate(feats.parts):
        if isinstance(part, np.memmap) and part.filename:
            parts.append({"file": str(part.filename), "shape": list(part.shape)})
        else:
            path = folder / f"{name}_part{k}.npy"
            np.save(path, np.asarray(part))
            parts.append({"npy": str(path)})
    for key in ("part", "offset", "length"):
        np.save(folder / f"{name}_{key}.npy", getattr(feats, key))
    np.save(folder / f"{name}_pooled.npy", feats.pooled.numpy())
    return {"parts": parts}


def _load_features(folder: Path, name: str, meta: dict, device) -> TextFeatures:
    parts = []
    for p in meta["parts"]:
        if "file" in p:
            parts.append(np.memmap(p["file"], np.float16, "r", shape=tuple(p["shape"])))
        else:
            parts.append(np.load(p["npy"], mmap_mode="r"))
    a = {key: np.load(folder / f"{name}_{key}.npy") for key in ("part", "offset", "length")}
    pooled = np.load(folder / f"{name}_pooled.npy")
    return TextFeatures(parts, a["part"], a["offset"], a["length"], pooled, device=device)


def _save_validation(folder: Path, val: Validation, arrays: dict) -> dict:
    arrays["val_gold"] = val.gold
    for name, space in (val.spaces or {}).items():
        arrays[f"val_rows_{name}"] = space.rows
        arrays[f"val_queries_{name}"] = val.queries[name]
    return {"feats": _save_features(folder, "val", val.feats), "spaces": list(val.spaces or [])}


def load_payload(folder: Path, device) -> dict:
    """train_generative's arguments from a payload folder (``device``: this worker's)."""
    meta = json.loads((folder / "payload.json").read_text())
    a = {p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")}
    d = meta["decoder"]
    decoder = IDDecoder(
        from_dict(RetrieverConfig, d["config"]),
        Vocab(**d["vocab"]),
        d["enc_hidden"],
        d["n_enc_layers"],
        d["item_dim"],
        d["n_items"],
    )
    decoder.load_state_dict(load_file(str(folder / "decoder.safetensors")))
    item_emb, id_tokens = np.asarray(a["item_emb"]), np.asarray(a["id_tokens"])
    trie = Trie(id_tokens).tie(item_emb) if decoder.tied else Trie(id_tokens)
    from ace_core.retrieval.training import TrainConfig

    return {
        "decoder": decoder.to(device),
        "train_feats": _load_features(folder, "train", meta["train_feats"], device),
        "train_items": np.asarray(a["train_items"]),
        "item_emb": item_emb,
        "id_tokens": id_tokens,
        "trie": trie,
        "cfg": from_dict(TrainConfig, meta["train"]),
        "val": _load_validation(folder, meta.get("val"), a, decoder, id_tokens, item_emb, device),
        "replay": _load_replay(meta.get("replay"), a),
        "validate_initial": meta["validate_initial"],
    }


def _load_validation(folder, meta, a, decoder, id_tokens, item_emb, device):
    if meta is None:
        return None
    spaces, queries = {}, {}
    for name in meta["spaces"]:
        rows = np.asarray(a[f"val_rows_{name}"])
        trie = Trie(id_tokens[rows])
        spaces[name] = TextSpace(None, rows, trie.tie(item_emb, rows) if decoder.tied else trie)
        queries[name] = np.asarray(a[f"val_queries_{name}"])
    feats = _load_features(folder, "val", meta["feats"], device)
    return Validation(feats, np.asarray(a["val_gold"]), spaces or None, queries or None)


def _load_replay(meta, a) -> Replay | None:
    if meta is None:
        return None
    arrays = {
        n: np.asarray(a[f"replay_{n}"]) for n in ("new_caps", "old_caps", "new_rows", "old_rows")
    }
    return Replay(
        arrays["new_caps"],
        arrays["old_caps"],
        meta["per_epoch_caps"],
        arrays["new_rows"],
        arrays["old_rows"],
        meta["per_epoch_rows"],
    )


def save_result(folder: Path, decoder: IDDecoder, report) -> None:
    """Rank 0: the trained weights and the training report."""
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    save_file(
        {k: v.to_dense() if v.is_sparse else v for k, v in state.items()},
        str(folder / "trained.safetensors"),
    )
    (folder / "report.json").write_text(json.dumps(asdict(report), default=float))


def load_result(folder: Path, decoder: IDDecoder):
    """The trained weights into ``decoder``, and the report (a TrainReport)."""
    from ace_core.retrieval.training import TrainReport

    decoder.load_state_dict(load_file(str(folder / "trained.safetensors")))
    decoder.eval()
    return TrainReport(**json.loads((folder / "report.json").read_text()))


class ProgressLines:
    """Rank 0 writes its progress as JSON lines; the launching process follows the file and
    calls its own callbacks (a worker's logs do not reach the build's run logger)."""

    def __init__(self, folder: Path):
        self.path = folder / "progress.jsonl"
        self.last_step = 0.0

    def epoch(self, epoch: int, row: dict) -> None:
        self._write({"epoch": epoch, "row": row})

    def step(self, done: int, budget: int, examples: int) -> None:
        now = time.monotonic()
        if now - self.last_step >= 1.0 or done == budget:
            self.last_step = now
            self._write({"step": [done, budget, examples]})

    def _write(self, entry: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, default=float) + "\n")

    def follow(self, progress, on_step, stop: threading.Event) -> None:
        """Call ``progress`` and ``on_step`` for each line as it comes, until ``stop``."""
        seen = 0
        while True:
            done = stop.is_set()
            lines = self.path.read_text().splitlines() if self.path.exists() else []
            for line in lines[seen:]:
                entry = json.loads(line)
                if "step" in entry and on_step:
                    on_step(*entry["step"])
                elif "epoch" in entry and progress:
                    progress(entry["epoch"], entry["row"])
            seen = len(lines)
            if done:
                return
            stop.wait(0.5)
