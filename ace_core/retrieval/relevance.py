"""Relevance in [0, 1] from a query path's raw scores (log-probabilities of generated IDs,
cosine similarities of the dense path), calibrated on a version's validation queries.

The model is logistic (Platt scaling) with a slope and an intercept per modality:
relevance = sigmoid(a[modality] * score + b[modality]). It is fit on every result a path
returns for the validation queries (label: the result is the query's item), so it estimates
the chance that a result is the item asked for, and the per-modality terms put the
modalities' score scales on one footing (an audio item's score is not an image item's; on
the demo store one shared slope lowered the zero-shot path's MRR@10, per-modality slopes
did not: docs/BENCHMARKS.md).
``threshold`` marks "no good match": the relevance below which 5% of the correct top
results of the validation queries fall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

L2 = 1e-2  # ridge on the weights: a few validation queries must not give an infinite slope
THRESHOLD_QUANTILE = 0.05


@dataclass(frozen=True)
class Calibration:
    slopes: dict[str, float]  # modality -> slope on the raw score (all positive)
    intercepts: dict[str, float]  # modality -> intercept
    threshold: float
    queries: int  # validation queries it was fit on
    results: int  # (score, correct) pairs

    def relevance(self, score: float, modality: str) -> float:
        a = self.slopes.get(modality, float(np.mean(list(self.slopes.values()))))
        b = self.intercepts.get(modality, float(np.mean(list(self.intercepts.values()))))
        return round(float(1 / (1 + np.exp(-np.clip(a * score + b, -50, 50)))), 4)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(
            {k: float(v) for k, v in d["slopes"].items()},
            {k: float(v) for k, v in d["intercepts"].items()},
            float(d["threshold"]),
            int(d["queries"]),
            int(d["results"]),
        )


def fit_calibration(
    ranked: Sequence[Sequence[tuple[float, str, bool]]],
) -> Calibration | None:
    """``ranked``: per validation query, its results as (score, modality, is the item)."""
    rows = [r for query in ranked for r in query]
    if not rows or not any(c for _, _, c in rows) or all(c for _, _, c in rows):
        return None  # nothing to tell right from wrong with
    modalities = sorted({m for _, m, _ in rows})
    m = len(modalities)
    x = np.zeros((len(rows), 2 * m))
    for n, (score, modality, _) in enumerate(rows):
        j = modalities.index(modality)
        x[n, j], x[n, m + j] = score, 1.0
    w = _logistic(x, np.array([float(c) for _, _, c in rows]))
    if (w[:m] <= 0).any():
        return None  # higher scores are not more often right here: no calibration to trust
    slopes, intercepts = (
        dict(zip(modalities, map(float, w[:m]))),
        dict(zip(modalities, map(float, w[m:]))),
    )
    cal = Calibration(slopes, intercepts, 0.0, len(ranked), len(rows))
    tops = [cal.relevance(q[0][0], q[0][1]) for q in ranked if q and q[0][2]]
    threshold = float(np.quantile(tops, THRESHOLD_QUANTILE)) if tops else 0.5
    return Calibration(slopes, intercepts, round(threshold, 4), cal.queries, cal.results)


def _logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Ridge logistic regression by Newton's method (the intercepts are columns of ``x``)."""
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + L2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + L2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
