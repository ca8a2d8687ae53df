"""The wire formats checked where a response enters cotbridge (`cotbridge.providers.wire`)."""

from __future__ import annotations

import json

import pytest

from cotbridge.providers.wire import CHAT, RESPONSES, TEXT, WireError

OK = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}]}


def test_a_good_body_comes_back_whole_with_its_extra_fields() -> None:
    body = {**OK, "id": "x", "system_fingerprint": "fp", "usage": {"prompt_tokens": 3, "prompt_tokens_details": None}}
    assert CHAT.parse(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    "body, where",
    [
        (None, "the body"),
        ({"choices": ["x"]}, "choices.0"),
        ({"choices": [{"message": None}]}, "choices.0.message"),
        ({**OK, "usage": {"prompt_tokens": "many"}}, "usage.prompt_tokens"),
        ({"choices": [{"message": {"content": [{"type": "image_url"}]}}]}, "content part of type 'image_url'"),
        ({"choices": [{"message": {"content": "x"}, "logprobs": {"content": [{"token": "x"}]}}]}, "logprob"),
    ],
)
def test_bodies_outside_the_chat_format_are_wire_errors(body: object, where: str) -> None:
    with pytest.raises(WireError, match="is not a chat completion") as info:
        CHAT.parse(json.dumps(body).encode())
    assert where in str(info.value)


def test_text_parts_are_joined() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    got = CHAT.parse(json.dumps({"choices": [{"message": {"content": parts}}]}).encode())
    assert got["choices"][0]["message"]["content"] == "ab"


def test_lone_surrogates_become_replacement_characters_anywhere() -> None:
    raw = b'{"choices": [{"message": {"content": "a\\ud800b"}}], "extra": {"\\udc00": ["\\ud83d\\ude00"]}}'
    got = CHAT.parse(raw)
    assert got["choices"][0]["message"]["content"] == "a\ufffdb"
    assert got["extra"] == {"\ufffd": ["\U0001f600"]}  # a proper pair stays the character it encodes
    json.dumps(got, ensure_ascii=False).encode()  # what the cache writes


def test_not_json_and_other_formats() -> None:
    with pytest.raises(WireError, match="not valid JSON"):
        CHAT.parse(b'{"choices": [')
    with pytest.raises(WireError, match="choices.0.text"):
        TEXT.parse(b'{"choices": [{"index": 0}]}')
    assert TEXT.parse(b'{"choices": [{"text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": [null]}}]}')
    with pytest.raises(WireError, match="output.0"):
        RESPONSES.parse(b'{"output": [7]}')
    assert CHAT.parse(b'{"choices": [], "x": NaN}')["choices"] == []
