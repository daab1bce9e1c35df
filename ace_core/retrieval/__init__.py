"""Retrieval: the ID decoder model, its training, trie-constrained generation, the dense
baseline and the evaluation protocol."""
