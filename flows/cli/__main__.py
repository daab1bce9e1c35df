"""`python -m flows.cli`: the `ace` command line."""

from flows.cli.main import run

run()
