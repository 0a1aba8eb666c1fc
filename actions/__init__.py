"""Engage custom actions for the Rasa SDK action server, one module per feature."""
