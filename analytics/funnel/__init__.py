"""The lead funnel (visitor → suspect → prospect → lead → opportunity) with fit and engagement scores (Python 3.11 runtime only)."""
