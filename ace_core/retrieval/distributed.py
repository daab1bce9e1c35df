"""Data-parallel training of the generative retriever: torch.distributed DDP, launched with
torchrun's semantics (torch.distributed.elastic: a c10d rendezvous; RANK, WORLD_SIZE and
LOCAL_RANK in each worker's environment).

``train.workers`` = N > 1 (``ace index --train-workers N``): the fit writes what training
reads to a folder (payload.py), starts N workers on this machine and waits. Each worker loads
the payload, joins the process group (gloo on CPU; NCCL on GPU, one device per worker), wraps
one training step's loss in DistributedDataParallel and takes every N-th batch of each epoch,
so a step averages the gradients of N batches; the step budget counts such steps, so the
examples per item are the same at any N. Every worker validates (the weights are the same
after each step, so they stop together); rank 0 writes the trained weights and its report.

Several machines: the build's own workers wait for ``train.nodes`` machines at
``train.rendezvous`` (HOST:PORT, reachable from all); on each other machine, with the payload
folder at the same path (shared storage), run what the build prints:

  torchrun --nnodes NODES --nproc-per-node N --rdzv-backend c10d \\
           --rdzv-endpoint HOST:PORT --rdzv-id RUN -m ace_core.retrieval.distributed PAYLOAD
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def launch(payload: Path, workers: int, nodes: int = 1, rendezvous: str = "") -> dict:
    """Run the payload's training on ``workers`` processes here (and ``nodes`` machines in
    all); returns rank 0's report. The trained weights are in the payload folder."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    run_id = f"ace-{uuid.uuid4().hex[:12]}"
    endpoint = rendezvous or "localhost:0"
    if nodes > 1:
        logger.warning(
            "training waits for %d machines; on each other one run: torchrun --nnodes %d "
            "--nproc-per-node %d --rdzv-backend c10d --rdzv-endpoint %s --rdzv-id %s "
            "-m ace_core.retrieval.distributed %s",
            nodes - 1,
            nodes,
            workers,
            endpoint,
            run_id,
            payload,
        )
    config = LaunchConfig(
        min_nodes=nodes,
        max_nodes=nodes,
        nproc_per_node=workers,
        run_id=run_id,
        rdzv_backend="c10d",
        rdzv_endpoint=endpoint,
        max_restarts=0,
        start_method="spawn",
        monitor_interval=1,
    )
    outputs = elastic_launch(config, worker)(str(payload))
    return outputs[0]


def train_in_workers(train_args: dict, cfg, *, progress, on_step, workdir=None):
    """train_generative(**train_args) on ``cfg.workers`` processes (and ``cfg.nodes``
    machines): the payload written under ``workdir`` (a temporary folder; shared storage
    when several machines train), the workers' progress followed, the result loaded into
    ``train_args["decoder"]``. Returns the TrainReport."""
    from ace_core.retrieval.payload import ProgressLines, load_result, save_payload

    with tempfile.TemporaryDirectory(prefix="ace-train-", dir=workdir) as tmp:
        folder = Path(tmp)
        save_payload(folder, train_args)
        lines, stop = ProgressLines(folder), threading.Event()
        follower = threading.Thread(target=lines.follow, args=(progress, on_step, stop))
        follower.start()
        try:
            launch(folder, cfg.workers, cfg.nodes, cfg.rendezvous)
        finally:
            stop.set()
            follower.join()
        return load_result(folder, train_args["decoder"])


def worker(payload: str) -> dict | None:
    """One worker: join the group, train its share, rank 0 saves the result."""
    from ace_core.retrieval.payload import ProgressLines, load_payload, save_result
    from ace_core.retrieval.training import train_generative

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    try:
        args = load_payload(Path(payload), device)
        lines = ProgressLines(Path(payload)) if dist.get_rank() == 0 else None
        report = train_generative(
            **args, device=device, progress=lines and lines.epoch, on_step=lines and lines.step
        )
        if dist.get_rank() == 0:
            save_result(Path(payload), args["decoder"], report)
            return json.loads(json.dumps(report.__dict__, default=str))
        return None
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":  # a worker on another machine, started by torchrun
    worker(sys.argv[1])
