"""Exchange port and its implementations (paper simulator now; ccxt next)."""
