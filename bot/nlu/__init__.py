"""Custom Rasa NLU components (Rasa server runtime)."""
