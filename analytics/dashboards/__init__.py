"""Dashboard aggregates (issue 13): per-day counters the analytics service keeps as it consumes the
log (projection.py), the pure fold that decides them (fold.py) and the charts read from them (charts.py)."""
