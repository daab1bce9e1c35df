"""A CLI run that uses Dask prints none of distributed's INFO lines (issue 43): its loggers
stay at WARNING in this process and in the worker processes a local cluster starts."""

import os
import subprocess
import sys

CHECK = """
import logging, os
from ace_index.flows.cli.console import configure_logging
configure_logging(verbose=False)
import distributed  # its logging is configured on import, from dask's config
levels = [logging.getLogger(n).getEffectiveLevel() for n in
          ("distributed", "distributed.scheduler", "distributed.worker", "bokeh", "tornado")]
print(min(levels), os.environ["DASK_LOGGING__DISTRIBUTED"])
"""


def test_the_cli_quiets_dasks_loggers():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["30", "warning"]  # WARNING: no INFO line reaches stderr
