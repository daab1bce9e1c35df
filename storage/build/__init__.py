"""Building versions: the discovery record a run starts from (``discovery_record``), the
staging area (``staging``), validation and atomic publish (``publish``) and the identifier
diff between versions (``audit``). Nothing here imports the read side (storage.catalog)."""
