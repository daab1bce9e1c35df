"""The store itself: its folders and locks (``store``), a version folder's file names
(``layout``), its sources (``sources``) and the check of a version against its manifest
(``verify``). ``Store`` and its errors are re-exported here: every layer opens a store."""

from ace_index.storage.store.errors import DamagedStoreError, StoreError, VersionNameError
from ace_index.storage.store.names import version_name
from ace_index.storage.store.store import Store

__all__ = ["DamagedStoreError", "Store", "StoreError", "VersionNameError", "version_name"]
