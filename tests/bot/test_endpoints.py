"""The project's endpoints.yml as Rasa reads it: the action server's shared secret goes out on every call."""

from __future__ import annotations

import pytest
from rasa.core.utils import read_endpoints_from_path
from rasa.shared.exceptions import RasaException

from tests.conftest import ROOT

ENDPOINTS = str(ROOT / "endpoints.yml")


@pytest.fixture
def endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ACTION_ENDPOINT_URL": "http://127.0.0.1:5055/webhook",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "6390",
        "REDIS_DB": "0",
        "REDIS_PASSWORD": "",
        "REDIS_URL": "redis://127.0.0.1:6390/0",
    }.items():
        monkeypatch.setenv(name, value)


def test_rasa_sends_the_action_token_as_a_bearer_header(endpoint_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_ACTION_TOKEN", "-starts-with-a-dash-and-is-long-enough-0123")
    action = read_endpoints_from_path(ENDPOINTS).action
    assert action is not None and action.url == "http://127.0.0.1:5055/webhook"
    assert action.headers == {"Authorization": "Bearer -starts-with-a-dash-and-is-long-enough-0123"}


def test_rasa_refuses_to_start_without_the_action_token(endpoint_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGAGE_ACTION_TOKEN", raising=False)
    with pytest.raises(RasaException, match="ENGAGE_ACTION_TOKEN"):
        read_endpoints_from_path(ENDPOINTS)
