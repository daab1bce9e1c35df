"""ACE Index core: media decoding, encoders, semantic IDs, generative retriever, metrics.

Pure ML code: imports nothing from flows/, tasks/, storage/ or prefect. Importing it changes
nothing in the process (the hub's offline default is set where a hub library is imported:
ace_core/offline.py).
"""

__version__ = "0.1.0"
