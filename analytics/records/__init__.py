"""One record per customer (the "360 view"), folded from the interaction log (Python 3.11 runtime only)."""
