"""The parity replay: recorded candles shown to both engines on one clock
(docs/migration.md, "Parity")."""
