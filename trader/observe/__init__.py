"""Observability: phase events (JSONL), Prometheus metrics, status rendering."""
