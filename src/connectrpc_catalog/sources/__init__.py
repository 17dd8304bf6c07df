"""Schema sources: one module per kind of source, over the shared pieces in `core`."""
