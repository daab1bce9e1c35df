"""A tqdm bar for epoch loops (shown on a terminal only)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def epoch_bar(desc: str, total: int) -> Iterator[Callable[[int, float], None]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, disable=None, leave=False)

    def update(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    try:
        yield update
    finally:
        bar.close()
