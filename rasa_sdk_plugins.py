"""rasa-sdk's plugin entry point: it imports this top-level module and runs its hooks at server start."""

from actions.server_hooks import init_hooks  # noqa: F401
