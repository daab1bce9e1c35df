"""The store itself: its folders and locks (``store``), a version folder's file names
(``layout``), its sources (``sources``) and the check of a version against its manifest
(``verify``). ``open_store`` (the one way the product opens a store), the ``IndexStore``
protocol it returns, the local ``Store`` and the errors are re-exported here."""

from ace_index.storage.store.errors import DamagedStoreError, StoreError, VersionNameError
from ace_index.storage.store.names import version_name
from ace_index.storage.store.protocol import IndexStore, open_store
from ace_index.storage.store.store import Store

__all__ = [
    "DamagedStoreError",
    "IndexStore",
    "Store",
    "StoreError",
    "VersionNameError",
    "open_store",
    "version_name",
]
