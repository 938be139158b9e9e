"""Temporal wiring shared by worker, starter and tests: data converter, search attributes,
client connection and the embedded dev server."""
