"""durable-trader: a crypto spot trader whose every symbol is a durable Temporal workflow."""
