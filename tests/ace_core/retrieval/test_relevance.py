"""Relevance calibration (ace_core/retrieval/relevance.py) on results whose truth is known:
higher scores mean more relevant, a modality with a shifted or stretched score scale is put
back on the others' footing, and the threshold passes 95% of correct top results."""

from __future__ import annotations

import numpy as np

from ace_core.retrieval.relevance import Calibration, fit_calibration


def _queries(rng, n: int, shift: dict[str, float]) -> list:
    """Per query ten results: the right one scores ~N(-1, .5), wrong ones ~N(-4, 1), plus a
    per-modality offset (another space's scale)."""
    out = []
    for q in range(n):
        rows = []
        for r in range(10):
            m = "audio" if (q + r) % 3 == 0 else "image"
            right = r == 0
            s = rng.normal(-1, 0.5) if right else rng.normal(-4, 1)
            rows.append((s + shift[m], m, right))
        out.append(sorted(rows, key=lambda x: -x[0]))
    return out


def test_scores_become_probabilities_and_modalities_share_one_scale():
    rng = np.random.default_rng(0)
    cal = fit_calibration(_queries(rng, 300, {"image": 0.0, "audio": -3.0}))
    assert cal is not None and min(cal.slopes.values()) > 0 and cal.queries == 300
    assert cal.relevance(-1.0, "image") > 0.8 and cal.relevance(-4.0, "image") < 0.1
    # the audio scale is 3 lower: the same evidence reads the same once calibrated
    assert abs(cal.relevance(-4.0, "audio") - cal.relevance(-1.0, "image")) < 0.1
    test = _queries(np.random.default_rng(1), 200, {"image": 0.0, "audio": -3.0})
    tops = [cal.relevance(s, m) for q in test for s, m, right in q if right]
    assert 0.85 <= np.mean([t >= cal.threshold for t in tops]) <= 1.0  # ~95% of right answers
    wrong = [cal.relevance(s, m) for q in test for s, m, right in q if not right]
    assert np.mean([w >= cal.threshold for w in wrong]) < 0.1


def test_a_stretched_score_scale_is_put_back_on_the_others_footing():
    rng = np.random.default_rng(5)
    queries = _queries(rng, 300, {"image": 0.0, "audio": 0.0})
    stretched = [[(s * 3 if m == "audio" else s, m, right) for s, m, right in q] for q in queries]
    cal = fit_calibration(stretched)
    assert abs(cal.relevance(-3.0, "audio") - cal.relevance(-1.0, "image")) < 0.1
    assert cal.slopes["audio"] < cal.slopes["image"]


def test_predicted_relevance_matches_the_observed_rate():
    rng = np.random.default_rng(2)
    cal = fit_calibration(_queries(rng, 400, {"image": 0.0, "audio": 0.0}))
    test = [r for q in _queries(np.random.default_rng(3), 400, {"image": 0, "audio": 0}) for r in q]
    p = np.array([cal.relevance(s, m) for s, m, _ in test])
    y = np.array([right for _, _, right in test], float)
    for lo, hi in ((0.0, 0.2), (0.2, 0.8), (0.8, 1.0)):
        band = (p >= lo) & (p < hi)
        if band.sum() > 30:
            assert abs(p[band].mean() - y[band].mean()) < 0.1  # calibrated, not only ordered


def test_nothing_to_learn_from_gives_no_calibration_and_a_round_trip_keeps_it():
    assert fit_calibration([]) is None
    assert fit_calibration([[(-1.0, "image", False)] * 3]) is None  # no right answer at all
    backwards = [[(-5.0, "image", True), (-1.0, "image", False)]] * 20
    assert fit_calibration(backwards) is None  # higher scores are wrong more often
    cal = fit_calibration(_queries(np.random.default_rng(4), 50, {"image": 0, "audio": 0}))
    assert Calibration.from_dict(cal.to_dict()) == cal
