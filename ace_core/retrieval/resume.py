"""A training run's checkpoint after every epoch, so a long run that is killed resumes where
its last finished epoch ended: the decoder's weights, both optimisers' moments, the batch
order's generator and torch's RNG, the budget and the counts, the history, and the best state
validation has kept so far (and the dense baseline's fit, dense.py's DenseRun, the same way
after each of its epochs). Tensors go to safetensors, the rest to JSON (no pickle); the
folder is replaced whole (written beside it, then renamed), so a kill while saving leaves the
previous checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(folder: Path, run, best) -> None:
    """``run``: training._Run; ``best``: training._BestCheckpoint."""
    tensors = {f"decoder.{k}": v for k, v in _dense(run.decoder.state_dict()).items()}
    tensors.update({f"best.{k}": v for k, v in _dense(best.state or {}).items()})
    opts = [_opt_tensors(opt, f"opt{n}.", tensors) for n, opt in enumerate(run.opt.opts)]
    tensors["rng.batches"] = run.gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "steps": run.steps,
        "examples": run.examples,
        "budget": run.budget,
        "stopped": run.stopped,
        "history": run.history,
        "optimizers": opts,
        "best": _best_meta(best),
    }
    _replace(folder, tensors, meta)


def load_checkpoint(folder: Path, run, best) -> int:
    """The run and best state as the checkpoint left them; returns the epochs it had done
    (0: no checkpoint)."""
    if not (folder / "state.json").exists():
        return 0
    meta = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "tensors.safetensors"))
    run.decoder.load_state_dict(_part(tensors, "decoder."))
    for n, opt in enumerate(run.opt.opts):
        _load_opt(opt, _part(tensors, f"opt{n}."), meta["optimizers"][n])
    run.gen.set_state(tensors["rng.batches"])
    torch.set_rng_state(tensors["rng.torch"])
    run.steps, run.examples, run.budget = meta["steps"], meta["examples"], meta["budget"]
    run.history, run.stopped = meta["history"], meta.get("stopped", "epochs")
    run.opt.plan(run.budget, done=run.steps)
    _load_best(best, meta["best"], _part(tensors, "best."))
    return len(run.history)


def save_dense(folder: Path, proj: torch.nn.Module) -> None:
    """The trained dense baseline beside the generative run's checkpoint (written whole, then
    renamed), so a run killed after it resumes at the test metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "dense.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in proj.state_dict().items()}, str(tmp))
    tmp.rename(folder / "dense.safetensors")


def save_dense_run(folder: Path, proj: torch.nn.Module, opt, schedule, gen, run) -> None:
    """A dense fit after an epoch (dense.py's DenseRun, with the projection, its optimiser,
    the learning-rate schedule and both RNGs), so a build killed while it trains the baseline
    resumes at its last epoch (written whole, then renamed)."""
    tensors = {f"proj.{k}": v for k, v in _dense(proj.state_dict()).items()}
    tensors.update({f"best.{k}": v for k, v in _dense(run.best_state or {}).items()})
    groups = _opt_tensors(opt, "opt.", tensors)
    tensors["rng.batches"], tensors["rng.torch"] = gen.get_state(), torch.get_rng_state()
    meta = {k: v for k, v in vars(run).items() if k != "best_state"}
    meta["optimizer"] = groups
    meta["schedule"] = schedule.state_dict() if schedule is not None else None
    _replace(folder, tensors, meta)


def load_dense_run(folder: Path, proj: torch.nn.Module, opt, schedule, gen, run) -> bool:
    """Whether ``folder`` held a dense fit's last epoch (then loaded into the arguments)."""
    if not (folder / "state.json").exists():
        return False
    meta = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "tensors.safetensors"))
    proj.load_state_dict(_part(tensors, "proj."))
    _load_opt(opt, _part(tensors, "opt."), meta.pop("optimizer"))
    scheduled = meta.pop("schedule")
    if schedule is not None:
        schedule.load_state_dict(scheduled)
    gen.set_state(tensors["rng.batches"])
    torch.set_rng_state(tensors["rng.torch"])
    vars(run).update(meta, best_state=_part(tensors, "best.") or None)
    return True


def load_dense(folder: Path, proj: torch.nn.Module) -> bool:
    """Whether the checkpoint held a trained dense baseline (then loaded into ``proj``)."""
    path = folder / "dense.safetensors"
    if not path.exists():
        return False
    proj.load_state_dict(load_file(str(path)))
    proj.eval()
    return True


def _best_meta(best) -> dict:
    return {
        "key": list(best.key) if best.key is not None else None,
        "epoch": best.epoch,
        "metrics": best.metrics,
        "gained_at": best.gained_at,
        "since_gain": best.since_gain,
    }


def _load_best(best, meta: dict, state: dict) -> None:
    best.key = tuple(meta["key"]) if meta["key"] is not None else None
    best.epoch, best.metrics = meta["epoch"], meta["metrics"]
    best.gained_at, best.since_gain = meta["gained_at"], meta["since_gain"]
    best.state = state or None


def _opt_tensors(opt, prefix: str, tensors: dict) -> list:
    """The optimiser's moments into ``tensors`` under ``prefix``; returns its param groups."""
    state = opt.state_dict()
    for p, moments in state["state"].items():
        for name, value in moments.items():
            tensors[f"{prefix}{p}.{name}"] = _dense({"v": torch.as_tensor(value)})["v"]
    return state["param_groups"]


def _load_opt(opt, tensors: dict, groups: list) -> None:
    moments: dict = {}
    for key, value in tensors.items():
        p, name = key.split(".", 1)
        moments.setdefault(int(p), {})[name] = value
    opt.load_state_dict({"state": moments, "param_groups": groups})


def _replace(folder: Path, tensors: dict, meta: dict) -> None:
    """``folder`` replaced whole by one holding ``tensors`` and ``meta`` (no pickle)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "tensors.safetensors"))
    (tmp / "state.json").write_text(json.dumps(meta, default=float))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _dense(state: dict) -> dict:
    return {k: (v.to_dense() if v.is_sparse else v).detach().cpu() for k, v in state.items()}


def _part(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
