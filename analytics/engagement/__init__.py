"""Engagement capability: five dimensions scored from the log under YAML rules (Python 3.11 runtime only)."""
