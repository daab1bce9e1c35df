"""Relevance in [0, 1] from a query path's raw scores (log-probabilities of generated IDs,
cosine similarities of the dense path), calibrated on a version's validation queries.

The model is logistic (Platt scaling) with one slope for the score and one intercept per
modality: relevance = sigmoid(a * score + b[modality]). It is fit on every result a path
returns for the validation queries (label: the result is the query's item), so it estimates
the chance that a result is the item asked for, and the per-modality intercepts put the
modalities' score scales on one footing (an audio item's score is not an image item's).
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
    slope: float
    intercepts: dict[str, float]  # modality -> intercept
    threshold: float
    queries: int  # validation queries it was fit on
    results: int  # (score, correct) pairs

    def relevance(self, score: float, modality: str) -> float:
        b = self.intercepts.get(modality, float(np.mean(list(self.intercepts.values()))))
        return round(float(1 / (1 + np.exp(-(self.slope * score + b)))), 4)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(float(d["slope"]), {k: float(v) for k, v in d["intercepts"].items()},
                   float(d["threshold"]), int(d["queries"]), int(d["results"]))  # fmt: skip


def fit_calibration(
    ranked: Sequence[Sequence[tuple[float, str, bool]]],
) -> Calibration | None:
    """``ranked``: per validation query, its results as (score, modality, is the item)."""
    rows = [r for query in ranked for r in query]
    if not rows or not any(c for _, _, c in rows) or all(c for _, _, c in rows):
        return None  # nothing to tell right from wrong with
    modalities = sorted({m for _, m, _ in rows})
    x = np.zeros((len(rows), 1 + len(modalities)))
    x[:, 0] = [s for s, _, _ in rows]
    for n, (_, m, _) in enumerate(rows):
        x[n, 1 + modalities.index(m)] = 1.0
    y = np.array([float(c) for _, _, c in rows])
    w = _logistic(x, y)
    if w[0] <= 0:
        return None  # higher scores are not more often right here: no calibration to trust
    cal = Calibration(float(w[0]), dict(zip(modalities, map(float, w[1:]))), 0.0,
                      len(ranked), len(rows))  # fmt: skip
    tops = [cal.relevance(q[0][0], q[0][1]) for q in ranked if q and q[0][2]]
    threshold = float(np.quantile(tops, THRESHOLD_QUANTILE)) if tops else 0.5
    return Calibration(cal.slope, cal.intercepts, round(threshold, 4), cal.queries, cal.results)


def _logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Ridge logistic regression by Newton's method (no intercept column: one per modality)."""
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
