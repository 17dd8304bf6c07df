"""Run the catalog server: python -m connectrpc_catalog."""

from connectrpc_catalog.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
