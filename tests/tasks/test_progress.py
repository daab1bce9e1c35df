"""Training's progress as an operator reads it (tasks/_progress.py): the expected time once
steady steps are timed, examples per item and time left, a line per validation, the progress
at 100% when validation ends training before its budget, and the dense baseline's lines."""

import logging

import pytest

from ace_index.tasks import _progress


def test_training_progress_says_what_it_expects_and_ends_at_100(monkeypatch, caplog):
    updates = []
    monkeypatch.setattr(_progress, "_progress_artifact", lambda key, what: "artifact")
    monkeypatch.setattr(_progress, "_update_artifact", lambda a, p: updates.append(p))
    caplog.set_level(logging.INFO, logger="ace")
    progress = _progress.TrainingProgress("ace-store-training", n_items=100)
    for step in range(1, 126):
        progress.step(step, 200, step * 64)
    progress.epoch(1, {"loss": 0.5, "steps": 125, "val": {"MRR@10": 0.4, "R@1": 0.3}})
    assert updates[-1] < 100.0
    row = {"loss": 0.4, "steps": 126, "val": {"MRR@10": 0.4, "R@1": 0.3}, "stopped": "flattened"}
    progress.epoch(2, row)  # validation flattened at step 126 of 200: the last row says so
    assert updates[-1] == 100.0 and progress.bar.bar.n == progress.bar.bar.total == 126
    assert "training stopped early at step 126 of 200: validation flattened (100% done)" in (
        caplog.text
    )
    progress.close()
    text = caplog.text
    assert "training: 200 steps planned (128 examples per item)" in text
    assert "it stops earlier once validation flattens" in text
    assert "examples/item" in text and "left" in text
    assert "training: epoch 1 (step 125), loss 0.5000, validation MRR@10 0.400, R@1 0.300" in text
    assert updates[-1] == 100.0


def test_the_expected_time_leaves_out_the_warm_up_steps(monkeypatch, caplog):
    """Ten slow first steps (1 s each), then steady ones (0.1 s): the expected time is the
    steady steps', said once 100 of them are timed (the first 20 steps alone read 0.57 s)."""
    clock = [0.0]
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(_progress, "_progress_artifact", lambda key, what: None)
    caplog.set_level(logging.INFO, logger="ace")
    progress = _progress.TrainingProgress(None, n_items=100)
    for step in range(1, 121):
        clock[0] += 1.0 if step <= 11 else 0.1
        progress.step(step, 1000, step * 64)
        assert ("steps planned" in caplog.text) == (step >= 111)
    assert "training: 1000 steps planned (640 examples per item), about 1m40s at 0.10 s a step" in (
        caplog.text
    )
    progress.close()


def test_the_dense_baseline_says_its_plan_its_epochs_and_its_end(monkeypatch, caplog):
    """Validation ends it at step 300 of 500: the bar and artifact end at 100% and the last
    line names the steps taken and the best validation R@1."""
    updates = []
    monkeypatch.setattr(_progress, "_progress_artifact", lambda key, what: "artifact")
    monkeypatch.setattr(_progress, "_update_artifact", lambda a, p: updates.append(p))
    caplog.set_level(logging.INFO, logger="ace")
    with _progress.dense_progress("ace-store") as on_dense:
        on_dense(0, 0, 500, None)
        for epoch, r1 in ((1, 0.2), (2, 0.3), (3, 0.25)):
            on_dense(epoch, 100 * epoch, 500, {"R@1": r1, "MRR@10": r1})
        assert on_dense.bar.done == 300 and updates[-1] == 60.0
    assert updates[-1] == 100.0
    text = caplog.text
    assert "dense baseline: 500 steps planned" in text
    assert "dense baseline 100/500" in text and "epoch 1, validation R@1 0.200" in text
    assert "dense baseline trained: 300 of 500 steps, best validation R@1 0.300" in text


def test_a_resumed_fit_says_where_it_starts_and_its_rate_counts_only_its_own_steps(
    monkeypatch, caplog
):
    """A build killed at step 960 of the dense baseline (and at step 400 of training) runs
    again: the bar starts there, and the rate is this run's 32 steps in 1 s, not 992."""
    clock = [0.0]
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(_progress, "_progress_artifact", lambda key, what: None)
    caplog.set_level(logging.INFO, logger="ace")
    with _progress.dense_progress(None) as on_dense:
        on_dense(0, 960, 4800, {"R@1": 0.45, "MRR@10": 0.55})  # its checkpoint's best
        clock[0] += 1.0
        on_dense(31, 992, 4800, {"R@1": 0.4, "MRR@10": 0.5})
        assert on_dense.bar.done == 992
    training = _progress.TrainingProgress(None, n_items=100)
    training.step(401, 1000, 401 * 64)
    clock[0] += 1.0
    training.step(402, 1000, 402 * 64)
    assert training.bar.done == 402 and training.bar.before == 400
    text = caplog.text
    assert "dense baseline: resumed at step 960 of 4800 (its checkpoint)" in text
    assert "dense baseline 992/4800 (32.0 step/s): epoch 31" in text
    assert "trained: 992 of 4800 steps, best validation R@1 0.450" in text  # before it too
    assert "training: resumed at step 400 of 1000 (its checkpoint)" in text
    training.close()


def test_a_dense_baseline_that_fails_does_not_say_it_trained(monkeypatch, caplog):
    monkeypatch.setattr(_progress, "_progress_artifact", lambda key, what: None)
    caplog.set_level(logging.INFO, logger="ace")
    with pytest.raises(MemoryError), _progress.dense_progress("ace-store") as on_dense:
        on_dense(0, 0, 500, None)
        raise MemoryError
    assert "dense baseline: 500 steps planned" in caplog.text
    assert "dense baseline trained" not in caplog.text


def test_durations_read_as_minutes_or_hours():
    assert _progress._duration(75) == "1m15s"
    assert _progress._duration(3 * 3600 + 125) == "3h02m"


def test_caption_features_count_each_text_once_over_a_fits_three_calls(monkeypatch, caplog):
    """A fit asks the feature store for its train, val and test captions in turn; each call
    reports (done, total) of its own texts. One bar counts them all, ending at its total."""
    monkeypatch.setattr(_progress, "_progress_artifact", lambda key, what: None)
    caplog.set_level(logging.INFO, logger="ace")
    bars = []

    class Recorded(_progress.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(_progress, "Progress", Recorded)
    calls = [[40, 80, 100], [5, 10], [10]]  # train 100 texts, val 10, test 10
    with _progress.text_progress("ace-store-features") as update:
        for steps in calls:
            for done in steps:
                update(done, steps[-1])
        [bar] = bars
        assert bar.done == bar.total == 120
    assert "caption features 120/120" in caplog.text
    assert not any(f"caption features {n}/" in caplog.text for n in range(121, 400))
