"""The index store (docs/DESIGN.md, "Store layout"), grouped by role: the store itself
(store/), its file formats (formats/), building versions (build/) and reading them
(catalog/)."""
