"""Saved requests for a team: collections, environments, auth helpers, assertions and
runs, stored in a database (SQLite by default, PostgreSQL for a team).

`db` opens the database and runs its migrations; `store.Store` is the one way to read
and write it (access rules included); `run` makes a saved request's call through
`invocation`; `files` exports and imports collections as files for Git; `runner` is the
`connectrpc-catalog run` command. Nothing here imports connectrpc.
"""
