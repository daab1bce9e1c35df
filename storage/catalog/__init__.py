"""Reading published versions: the list of versions and their evaluation (``versions``), and
the ablations of a version, trained on demand and kept (``ablations``)."""
