"""The `ace` command line: a thin shell over the flows, the query package and the store.

- ``main``: the parser of every command group, error handling and exit codes;
- ``options``: the options shared by commands and the typed configs built from them;
- ``corpus_commands``, ``build_commands``, ``read_commands``: one module per command group,
  each adding its sub-commands to the parser and running them;
- ``present``: what people read (tables, summaries); ``--json`` prints the payloads as they are;
- ``console``: which log lines reach the terminal.

Exit codes: 0 success, 2 bad usage or input (one-line reason on stderr), 3 a damaged store,
1 internal failure. The ``ace`` console script is ``ace_index.flows.cli:run``.
"""

from ace_index.flows.cli.main import main, run
from ace_index.flows.cli.options import EXIT_DAMAGED

__all__ = ["EXIT_DAMAGED", "main", "run"]
