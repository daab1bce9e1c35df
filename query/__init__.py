"""Querying a published version: the loaded version (``loaded``), its text towers
(``towers``), the one search entry (``search``) and the scoring of a query file
(``evaluate``).

Sits between storage and flows: it imports ace_core and storage; storage and tasks never
import it (tests/test_layout.py). The command line, the service, ``ace eval`` and the
benchmarks all search through ``search.search_version`` / ``search.Searcher``.
"""
