"""Hugging Face libraries stay offline unless the user allows downloads.

laion-clap loads tokenizers from the model hub at import time and hangs for minutes when the
hub is unreachable; huggingface_hub and transformers read these flags once, when first
imported. So every place that imports open_clip, transformers or laion_clap calls
``hub_offline()`` just before. Users who want downloads set HF_HUB_OFFLINE=0 explicitly.
"""

from __future__ import annotations

import os


def hub_offline() -> None:
    """Default HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) to 1 unless already set."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
