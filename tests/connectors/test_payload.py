"""Validation of REST chat payloads (pure: no server, no Redis)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.errors import RequestRejected
from connectors.payload import CappedJson, InboundMessage, PayloadLimits, nesting_exceeds, parse_rest_payload


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def rejected(body: bytes, **kwargs: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse_rest_payload(body, **kwargs)
    return info.value


def test_a_good_payload_is_parsed() -> None:
    body = encode(
        {"sender": "user-1@acme.example", "message": "How do I export a form?", "metadata": {"product": "forms"}}
    )
    assert parse_rest_payload(body) == InboundMessage(
        sender_id="user-1@acme.example",
        text="How do I export a form?",
        metadata={"product": "forms"},
        input_channel="rest",
    )


def test_metadata_and_input_channel_are_optional() -> None:
    parsed = parse_rest_payload(encode({"sender": "u", "message": "hi", "metadata": None, "input_channel": None}))
    assert (parsed.metadata, parsed.input_channel) == (None, "rest")


def test_sender_limits() -> None:
    assert parse_rest_payload(encode({"sender": "a" * 128, "message": "hi"})).sender_id == "a" * 128
    for sender in ("a" * 129, "", "has space", "semi;colon", "ünï", "line\n", 7, None, ["a"]):
        error = rejected(encode({"sender": sender, "message": "hi"}))
        assert (error.status, error.code, error.fields) == (400, "invalid_sender", ["sender"]), sender


def test_message_length_is_counted_in_characters() -> None:
    limits = PayloadLimits(max_message_chars=10)
    assert parse_rest_payload(encode({"sender": "u", "message": "é" * 10}), limits).text == "é" * 10
    error = rejected(encode({"sender": "u", "message": "é" * 11}), limits=limits)
    assert (error.status, error.code) == (413, "message_too_long")
    assert "under 10 characters" in error.detail and "11" in error.detail


def test_message_type_and_emptiness() -> None:
    for message in (None, 3, ["hi"], {"text": "hi"}):
        assert rejected(encode({"sender": "u", "message": message})).code == "invalid_message"
    assert rejected(encode({"sender": "u"})).code == "invalid_message"
    for message in ("", "   ", "\n\t "):
        assert rejected(encode({"sender": "u", "message": message})).code == "empty_message"


def test_unknown_fields_are_named() -> None:
    error = rejected(encode({"sender": "u", "message": "hi", "zeta": 1, "alpha": 2}))
    assert (error.status, error.code, error.fields) == (400, "unknown_fields", ["alpha", "zeta"])
    assert "alpha, zeta" in error.detail


def test_metadata_must_be_a_small_object() -> None:
    for metadata in ("product", 1, ["a"], True):
        assert rejected(encode({"sender": "u", "message": "hi", "metadata": metadata})).code == "invalid_metadata"
    fits = {"k": "v" * (8192 - len('{"k":""}'))}
    assert parse_rest_payload(encode({"sender": "u", "message": "hi", "metadata": fits})).metadata == fits
    too_big = {"k": "v" * (8193 - len('{"k":""}'))}
    error = rejected(encode({"sender": "u", "message": "hi", "metadata": too_big}))
    assert (error.status, error.code) == (400, "metadata_too_large")


def test_input_channel_cannot_be_spoofed() -> None:
    body = encode({"sender": "u", "message": "hi", "input_channel": "whatsapp"})
    assert rejected(body).code == "invalid_input_channel"
    assert parse_rest_payload(body, allowed_channels=frozenset({"whatsapp"})).input_channel == "whatsapp"
    assert parse_rest_payload(encode({"sender": "u", "message": "hi", "input_channel": "rest"})).input_channel == "rest"
    assert rejected(encode({"sender": "u", "message": "hi", "input_channel": 5})).code == "invalid_input_channel"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{'sender': 'u'}",
        b'{"sender": "u", "message": "hi"',
        b"\xff\xfe{}",
        b'{"sender": "a", "sender": "b", "message": "hi"}',
        b'{"sender": "u", "message": "hi", "metadata": {"x": NaN}}',
        b'{"sender": "u", "message": "hi", "metadata": {"x": 1e999}}',
        b'{"sender": "u", "message": "hi", "metadata": ' + b"[" * 20000 + b"]" * 20000 + b"}",
    ],
    ids=["empty", "text", "single-quotes", "truncated", "not-utf8", "duplicate-key", "nan", "infinite", "deep"],
)
def test_bodies_that_are_not_clean_json(body: bytes) -> None:
    error = rejected(body)
    assert (error.status, error.code) == (400, "invalid_json")


@pytest.mark.parametrize("depth", [33, 500, 985, 20_000])
def test_nesting_is_capped_before_parsing(depth: int) -> None:
    metadata = "[" * (depth - 1) + "]" * (depth - 1)  # inside the body's own object
    error = rejected(b'{"sender": "u", "message": "hi", "metadata": {"x": ' + metadata.encode() + b"}}")
    assert (error.status, error.code) == (400, "invalid_json") and "more than 32 deep" in error.detail
    assert rejected(b"[" * depth).code == "invalid_json"  # unbalanced: json.loads would recurse before failing


def test_nesting_up_to_the_cap_and_brackets_in_strings_are_fine() -> None:
    deep = {"x": json.loads("[" * 30 + "]" * 30)}  # 32 levels with the body and metadata objects
    assert parse_rest_payload(encode({"sender": "u", "message": "hi", "metadata": deep})).metadata == deep
    text = "[[{" * 1000 + ' \\" [ \\'
    assert parse_rest_payload(encode({"sender": "u", "message": text})).text == text
    assert not nesting_exceeds('"' + "[" * 100, 32)  # an unterminated string: its brackets do not count
    assert nesting_exceeds('{"a": "]]]]", "b": ' + "[" * 33, 32)


def test_capped_json_stands_in_for_the_json_module() -> None:
    assert CappedJson.loads('{"a": [1, {"b": "[[["}]}') == {"a": [1, {"b": "[[["}]}
    assert CappedJson.loads(b"[[1]]") == [[1]] and CappedJson.dumps({"a": 1}, separators=(",", ":")) == '{"a":1}'
    with pytest.raises(ValueError, match="more than 32 deep"):
        CappedJson.loads("[" * 1000)


def test_non_objects_are_refused() -> None:
    for payload in ([], ["sender", "message"], "hi", 3, None):
        assert rejected(encode(payload)).code == "not_an_object"


def test_lone_surrogates_in_the_message_become_replacement_characters() -> None:
    # The same text on every channel (connectors.messages.normalise_text); metadata is the caller's own data.
    assert parse_rest_payload(b'{"sender": "u", "message": "hi \\ud800 there \\udfff"}').text == "hi \ufffd there \ufffd"
    assert parse_rest_payload(b'{"sender": "u", "message": "ok \\ud83d\\ude00"}').text == "ok \U0001F600"  # a pair is kept
    assert rejected(b'{"sender": "u", "message": "hi", "metadata": {"p": "\\udfff"}}').code == "invalid_metadata"


def test_the_body_size_is_checked_before_parsing() -> None:
    error = rejected(b" " * (64 * 1024 + 1))
    assert (error.status, error.code) == (413, "body_too_large")
    body = encode({"sender": "u", "message": "\u00e9" * 4096})  # json.dumps escapes each as \u00e9
    assert len(body) > 6 * 4096
    assert parse_rest_payload(body).text == "\u00e9" * 4096  # a fully escaped longest message fits


def test_rejection_body_is_json_ready() -> None:
    error = rejected(encode({"sender": "u", "message": "hi", "extra": 1}))
    assert json.loads(json.dumps(error.body())) == {
        "error": "unknown_fields",
        "message": error.detail,
        "fields": ["extra"],
    }
