"""Idea mining (issue 11): near-duplicate merge, themes, labels and product areas (action runtime only)."""
