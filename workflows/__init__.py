"""Deterministic Temporal workflow code: SymbolTrader and Portfolio."""
