"""Engage's Rasa-server side: domain and stories (YAML) plus the Python plugged into Rasa (event broker)."""
