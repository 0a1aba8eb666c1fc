"""Engage analytics: the interaction log schema (shared by both runtimes) and, later, scoring."""
