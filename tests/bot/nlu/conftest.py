"""These tests import Rasa, so they run only in the Rasa runtime (.venvs/rasa)."""

import importlib.util

# Collected only where Rasa is installed: `pytest tests` in the action runtime skips them.
collect_ignore_glob = [] if importlib.util.find_spec("rasa") else ["test_*.py"]
