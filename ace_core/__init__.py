"""ACE Index core: media decoding, encoders, semantic IDs, generative retriever, metrics.

Pure ML code: imports nothing from flows/, tasks/, storage/ or prefect.
"""

import os

# laion-clap loads tokenizers from the model hub at import time and hangs for minutes when the
# hub is unreachable; Hugging Face libraries read this flag once, at import. Users who want
# downloads set HF_HUB_OFFLINE=0 explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])

__version__ = "0.1.0"
