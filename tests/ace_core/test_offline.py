"""Importing ace_core changes nothing in the process; the hub's offline default is set just
before a hub library is imported (ace_core/offline.py)."""

import os
import subprocess
import sys

CHECK = """
import os, sys
import ace_core, ace_core.media.pipeline, ace_core.retrieval.model
assert "HF_HUB_OFFLINE" not in os.environ, "set on import"
from ace_core.retrieval.model import RetrieverConfig
from ace_core.retrieval.text_encoder import build_text_encoder
build_text_encoder(RetrieverConfig())  # where transformers or the hub may be imported
assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
"""


def test_importing_ace_core_sets_no_environment_and_a_hub_import_stays_offline():
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    run = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_a_users_choice_is_kept():
    from ace_core.offline import hub_offline

    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "0"
    try:
        hub_offline()
        assert os.environ["HF_HUB_OFFLINE"] == "0"
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE")
        else:
            os.environ["HF_HUB_OFFLINE"] = before
