"""The product's packages under one name that cannot collide: ``ace_index.storage``,
``ace_index.query``, ``ace_index.tasks`` and ``ace_index.flows``.

The folders stay at the repository's top level (docs/DESIGN.md, "Layout"); this package's
search path is that top level, so ``ace_index.storage`` is ``storage/``. Imported bare,
``storage`` (or ``tasks``, ``query``, ``flows``) resolves against the working directory
first, and a folder of that name there (PREFECT_HOME holds ``storage/``) shadowed the product
as an empty namespace package (issue 43). Nothing in the product, its tests or its benches
imports those names bare (tests/test_layout.py). ``ace_core`` keeps its own distinctive name.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent)]
