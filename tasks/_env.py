"""Process environment for the command line and flows, applied before prefect is imported.

- Prefect runs on its embedded (ephemeral, SQLite) API unless PREFECT_API_URL is set; its home
  defaults to a per-user folder so runs need no server and no set-up.
- Telemetry is off (the machine may be offline), the ephemeral server gets time to start next
  to loaded models, and Hugging Face libraries stay offline unless HF_HUB_OFFLINE=0.
"""

import os
import tempfile
from pathlib import Path


def apply() -> None:
    if "PREFECT_HOME" not in os.environ:
        home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ace-index"
        try:
            (home / "prefect").mkdir(parents=True, exist_ok=True)  # prefect makes one level only
        except OSError:
            home = Path(tempfile.gettempdir()) / f"ace-index-{os.getuid()}"
        os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")  # run loggers reach the API (the UI)
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


apply()
