"""Every action name in actions/constants.py has exactly one registered Action class."""

from __future__ import annotations

import pickle

from rasa_sdk.executor import ActionExecutor

from actions import constants


def action_names() -> set:
    return {
        value
        for name, value in vars(constants).items()
        if (name.startswith("ACTION_") or name.startswith("VALIDATE_")) and isinstance(value, str)
    }


def ours(executor: ActionExecutor) -> set:
    """Registered names whose class lives in the actions package (tests define Action subclasses too)."""
    return {name for name, run in executor.actions.items() if type(run.__self__).__module__.startswith("actions.")}


def test_every_action_constant_is_registered_and_nothing_else() -> None:
    executor = ActionExecutor()
    executor.register_package("actions")
    assert len(action_names()) == 26
    assert ours(executor) == action_names()


def test_registered_actions_survive_pickling() -> None:
    # Sanic pickles the executor (with the action instances) into its worker process.
    executor = ActionExecutor()
    executor.register_package("actions")
    restored = pickle.loads(pickle.dumps(executor))
    assert ours(restored) == action_names()
