"""Consuming the interaction log (`engage:events`) as a Redis consumer group (Python 3.11 runtime only)."""
