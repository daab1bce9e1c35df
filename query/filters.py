"""Filters of a search beside its modality: the source an item comes from and its date
(items.parquet ``date``: a photo's EXIF date, else the file's time), and the order of the
results (by relevance, the default, or newest first). A filter narrows the items the
decoder may generate (a trie over the items that pass), so k results still come back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ace_index.query.request import QueryError

SORTS = ("relevance", "date")
_DATE = re.compile(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}(:[0-9]{2}(:[0-9]{2})?)?)?)?)?")
_EARLIEST = "0001-01-01T00:00:00"  # what a prefix is completed with to check it


def _date_pattern() -> str:
    """The dates ``checked_filters`` accepts as one regular expression (for the API's schema;
    tests/query/test_request.py checks that both agree): a year, a month, a day of that
    month (February 29 in leap years only), an hour, minutes, seconds."""
    year = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
    leap = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
    time = "(T([01][0-9]|2[0-3])(:[0-5][0-9](:[0-5][0-9])?)?)?"
    days = {
        "(0[13578]|1[02])": "(0[1-9]|[12][0-9]|3[01])",
        "(0[469]|11)": "(0[1-9]|[12][0-9]|30)",
        "02": "(0[1-9]|1[0-9]|2[0-8])",
    }
    month_days = "|".join(f"{m}(-{d}{time})?" for m, d in days.items())
    return f"^({year}(-({month_days}))?|{leap}-02-29{time})$"


DATE_PATTERN = _date_pattern()


@dataclass(frozen=True)
class Filters:
    source: str | None = None
    since: str | None = None  # inclusive; a prefix of an ISO date ("2024", "2024-05-01")
    until: str | None = None  # inclusive: "2024-05" keeps all of May 2024

    @property
    def active(self) -> bool:
        return bool(self.source or self.since or self.until)

    def keeps(self, item: dict) -> bool:
        if self.source and item.get("source_id") != self.source:
            return False
        if not (self.since or self.until):
            return True
        date = item.get("date")
        if not date:
            return False  # an item without a date never passes a date filter
        if self.since and date[: len(self.since)] < self.since:
            return False
        return not (self.until and date[: len(self.until)] > self.until)


def checked_filters(
    source: str | None = None, since: str | None = None, until: str | None = None
) -> Filters:
    for name, value in (("since", since), ("until", until)):
        if value and not _is_date(value):
            raise QueryError(f"{name} must be an ISO date such as 2024-05-01, got {value!r}")
    return Filters(source or None, since or None, until or None)


def checked_sort(sort: str) -> str:
    if sort not in SORTS:
        raise QueryError(f"unknown sort {sort!r} (one of {', '.join(SORTS)})")
    return sort


def sort_by_date(results: list[dict], items: dict[str, dict]) -> None:
    """Newest first; items without a date last (in their relevance order)."""
    results.sort(key=lambda r: items[r["item_id"]].get("date") or "", reverse=True)


def _is_date(value: str) -> bool:
    """An ISO date or a prefix of one ("2024", "2024-05") that names a real day, month or
    time (not 2024-13-01 or 2024-02-30), in ASCII digits."""
    if not _DATE.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value + _EARLIEST[len(value) :])
    except ValueError:
        return False
    return True
