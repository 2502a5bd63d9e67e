"""The event-sourcing kit every store shares: record checks, the SQLite row codec and event
table, the group-commit writer thread, the reader pool and the WAL checkpointer."""
