"""Run the catalog server: python -m connectrpc_catalog."""

from connectrpc_catalog.cli import main

raise SystemExit(main())
