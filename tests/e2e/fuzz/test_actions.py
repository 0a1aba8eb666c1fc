"""Fuzzing the action server's door: it answers only the Rasa server, which holds the shared
secret. Any request without that secret, whatever its path, method, header or body, gets a
4xx quickly (never a 2xx, never a 5xx), and the action server still serves the Rasa server."""

from __future__ import annotations

from typing import Any, Dict, Tuple
from urllib.parse import quote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from scripts.stack import Stack
from tests.e2e.fuzz.support import (
    Tally, assert_answered, edge_text, encoded, encodings, fuzz, header_value, json_values, plain_text, raw_bodies, timed,
)

paths = st.one_of(st.sampled_from(["/webhook", "/actions", "/webhook/", "/", "/nothing", "/health/x", "/webhook?x=1"]), plain_text.map(lambda p: "/" + quote(p.lstrip("/"), safe="/?=&")))
# Found by this suite and fixed in actions/server_auth.py: a token holding bytes that are not UTF-8
# reached `presented.strip().encode()` as surrogate escapes: UnicodeEncodeError, 500.
NON_UTF8_TOKEN_BUG = False

authorizations = st.one_of(
    st.none(), st.just("Bearer"), st.just("Bearer "), st.just("Basic dXNlcjpwYXNz"),
    st.builds(lambda s: f"Bearer {s}", st.one_of(plain_text, *([] if NON_UTF8_TOKEN_BUG else [edge_text]))),
    st.sampled_from(["wrong-case", "prefix", "suffix", "doubled"]),  # near misses of the real token
)
bodies = st.one_of(
    st.tuples(st.just("json"), st.fixed_dictionaries({"next_action": st.sampled_from(["action_answer_faq", "action_link_account", "action_listen"]), "tracker": json_values, "domain": json_values, "version": st.just("3.6.21")}), encodings),
    st.tuples(st.just("json"), json_values, encodings),
    st.tuples(st.just("raw"), raw_bodies, st.just("")),
)


def header_for(kind: Any, token: str) -> Dict[str, bytes]:
    if kind is None:
        return {}
    value = {
        "wrong-case": f"Bearer {token.swapcase()}",
        "prefix": f"Bearer {token[:-1]}",
        "suffix": f"Bearer {token}x",
        "doubled": f"Bearer {token} {token}",
    }.get(kind, kind)
    return {"Authorization": header_value(value)}


def test_the_action_server_answers_only_the_rasa_server(stack: Stack) -> None:
    tally = Tally("actions", stack)

    @fuzz
    @given(method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]), path=paths, authorization=authorizations, body=bodies)
    def one(method: str, path: str, authorization: Any, body: Tuple[str, Any, str]) -> None:
        kind, value, how = body
        data = value if kind == "raw" else encoded(value, how)
        headers = {"Content-Type": "application/json", **header_for(authorization, stack.action_token)}
        response, seconds = timed(method, stack.actions_url + path, data=data, headers=headers)
        tally.count(response.status_code)
        assert_answered(response, seconds)
        assert response.status_code >= 400, (method, path, authorization, response.status_code, response.text[:300])

    try:
        one()
    finally:
        tally.write()
    tally.assert_quiet()
    served = requests.get(f"{stack.actions_url}/actions", headers={"Authorization": f"Bearer {stack.action_token}"}, timeout=30)
    assert served.status_code == 200 and served.json(), served.text  # still serving the Rasa server


def test_a_token_that_is_not_utf8_is_refused(stack: Stack) -> None:
    response = requests.post(f"{stack.actions_url}/webhook", data=b"{}", headers={"Authorization": b"Bearer \xe8"}, timeout=10)
    assert response.status_code == 401, response.text
