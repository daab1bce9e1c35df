"""Semantic IDs: K-Means coarse token, RQ-VAE fine tokens, unique suffix, and their quality."""
