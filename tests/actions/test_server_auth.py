"""The action server's shared-secret check, on its own."""

from __future__ import annotations

import pytest

from actions.server_auth import ActionTokenError, authorized, load_token

TOKEN = b"test-action-token-0123456789abcdefghijklmnop"


@pytest.mark.parametrize(
    "header, ok",
    [
        ("Bearer test-action-token-0123456789abcdefghijklmnop", True),
        ("bearer  test-action-token-0123456789abcdefghijklmnop ", True),
        ("Bearer test-action-token-0123456789abcdefghijklmnoq", False),
        ("Basic test-action-token-0123456789abcdefghijklmnop", False),
        ("test-action-token-0123456789abcdefghijklmnop", False),
        ("Bearer", False),
        ("", False),
        (None, False),
        ("Bearer \udce8", False),  # bytes that are not UTF-8, as the server hands them over (a 500 before)
        ("Bearer \u00e8\u2603", False),
    ],
)
def test_only_the_exact_secret_passes(header: str, ok: bool) -> None:
    assert authorized(header, TOKEN) is ok


def test_a_missing_or_short_secret_stops_the_server() -> None:
    with pytest.raises(ActionTokenError, match="make run"):
        load_token({})
    with pytest.raises(ActionTokenError, match="at least 32"):
        load_token({"ENGAGE_ACTION_TOKEN": "short"})
    assert load_token({"ENGAGE_ACTION_TOKEN": TOKEN.decode()}) == TOKEN
