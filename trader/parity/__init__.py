"""The parity replay: recorded candles through both engines on one stepped clock
(docs/migration.md, "Parity")."""
