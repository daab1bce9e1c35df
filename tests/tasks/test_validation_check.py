"""A build without validation queries says so in one warning before training (issue 43):
what it costs (no early stopping, default fusion weights, uncalibrated relevance) and how to
fix it."""

import logging

from ace_core.media.discovery import CaptionEntry
from ace_index.tasks.validation_check import warn_if_no_validation

ITEMS = [f"i{n}" for n in range(4)]


def test_a_coco_like_import_without_val_captions_warns(caplog):
    caplog.set_level(logging.INFO, logger="ace")
    captions = {i: CaptionEntry([f"a photo of {i}"], "train" if n % 2 else "test")
                for n, i in enumerate(ITEMS)}  # fmt: skip
    assert warn_if_no_validation(ITEMS, captions, seed=0)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = record.getMessage()
    assert text.startswith("no validation queries (4 of 4 items captioned, unseen protocol")
    for needle in ("no early stopping", "default weights", "relevance is uncalibrated",
                   "give more items captions", "FILE=val"):  # fmt: skip
        assert needle in text, text
    assert record.ace_stage  # a stage line: the CLI and the run's log show it


def test_validation_queries_or_too_few_captions(caplog):
    three = {i: CaptionEntry([f"{i} one", f"{i} two", f"{i} three"], None) for i in ITEMS}
    assert not warn_if_no_validation(ITEMS, three, seed=0)
    two = {i: CaptionEntry([f"{i} one", f"{i} two"], None) for i in ITEMS[:2]}
    assert warn_if_no_validation(ITEMS, two, seed=0)
    assert "(2 of 4 items captioned, seen protocol: no item has 3 or more" in caplog.text
