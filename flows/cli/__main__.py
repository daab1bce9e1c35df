"""`python -m flows.cli`: the `ace` command line."""

from ace_index.flows.cli.main import run

run()
