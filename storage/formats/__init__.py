"""The store's file formats: Parquet tables and schemas (``tables``), embedding shards
(``shards``), semantic IDs and codebooks (``codebooks``), retriever weights (``retriever``),
a version's tables read back (``version_data``) and its manifest's configuration
(``manifest``)."""
