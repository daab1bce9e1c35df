"""Rankers: every way a query is ranked over a loaded version, one module each, listed once
in ``registry.py``. The served query paths (``query.request.PATHS``), ``ace eval``'s keys and
the page's evaluation rows come from that list; ``rank`` is the one way to run any of them.
Adding a ranker is one module with a class that implements ``base.Ranker`` and one line in
the registry (docs/DESIGN.md, "Rankers", walks through one).
"""
