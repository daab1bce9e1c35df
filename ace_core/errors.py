"""Project error types."""


class AceInputError(ValueError):
    """Bad input the user can fix (bad embeddings, empty corpus, bad query, ...)."""
