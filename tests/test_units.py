"""Pure logic: cache keys, Retry-After, response parsing across dialects."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotbridge.cache.keys import canonical_json, request_key
from cotbridge.formats import split_inline_thinking, split_reasoning
from cotbridge.providers.ratelimit import parse_reset, parse_retry_after, retry_wait_s
from cotbridge.providers.response import is_cacheable_choice, parse_logprobs, parse_usage
from cotbridge.providers.transport import public_url

BASE = dict(op="chat", provider="vllm", endpoint="http://h:8000/v1", model="m")


def test_key_is_stable_and_ignores_dict_order() -> None:
    a = request_key(**BASE, body={"messages": [{"role": "user", "content": "x"}], "temperature": 0.0})
    b = request_key(**BASE, body={"temperature": 0.0, "messages": [{"content": "x", "role": "user"}]})
    assert a == b and len(a) == 64


def test_key_is_sha256_of_the_canonical_material() -> None:
    import hashlib
    import json

    body = {"messages": [{"role": "user", "content": "é"}], "temperature": 0.0}
    material = {
        "v": 1,
        "op": "chat",
        "provider": "vllm",
        "endpoint": "http://h:8000/v1",
        "model": "m",
        "body": body,
        "sample": 3,
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert request_key(**BASE, body=body, sample_index=3) == hashlib.sha256(canonical.encode()).hexdigest()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_canonical_json_is_the_standard_librarys_sorted_compact_json(value: object) -> None:
    """Cache keys are made of these bytes: the encoder made once must write what json.dumps writes, or every key
    stored before would stop matching."""
    import json

    assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_canonical_json_refuses_what_json_refuses() -> None:
    for bad, error in (({"t": float("nan")}, ValueError), ({"t": object()}, TypeError), ({(1, 2): 3}, TypeError)):
        with pytest.raises(error):
            canonical_json(bad)


def test_key_separates_samples_endpoints_models_and_bodies() -> None:
    body = {"messages": [{"role": "user", "content": "x"}]}
    keys = {
        request_key(**BASE, body=body),
        request_key(**BASE, body=body, sample_index=1),
        request_key(**{**BASE, "endpoint": "http://other:8000/v1"}, body=body),
        request_key(**{**BASE, "model": "m2"}, body=body),
        request_key(**{**BASE, "op": "completions"}, body=body),
        request_key(**BASE, body={**body, "extra": 1}),
    }
    assert len(keys) == 6


@given(st.text(), st.text())
def test_inline_thinking_split(reasoning: str, answer: str) -> None:
    reasoning = reasoning.replace("<think>", "").replace("</think>", "")
    answer = answer.replace("<think>", "").replace("</think>", "")
    got_reasoning, got_answer = split_inline_thinking(f"<think>{reasoning}</think>{answer}")
    assert got_reasoning == reasoning.strip()
    assert got_answer == answer.strip()


def parse_chat_choice(choice: dict[str, Any], prefill: str | None) -> tuple[str, str | None]:
    message = choice["message"]
    return split_reasoning(
        message.get("content"), message.get("reasoning") or message.get("reasoning_content"), prefill
    )


def test_reasoning_from_every_server_shape() -> None:
    field = {"message": {"content": "4", "reasoning": "2+2"}, "finish_reason": "stop"}
    older = {"message": {"content": "4", "reasoning_content": "2+2"}}
    inline = {"message": {"content": "<think>\n2+2\n</think>\n\n4"}}
    opened_by_template = {"message": {"content": "2+2\n</think>\n4"}}
    for choice in (field, older, inline, opened_by_template):
        text, reasoning = parse_chat_choice(choice, None)
        assert (text, reasoning) == ("4", "2+2"), choice
    plain = {"message": {"content": "just 4"}}
    assert parse_chat_choice(plain, None)[:2] == ("just 4", None)


def test_prefill_echoed_or_not_gives_the_same_result() -> None:
    # vLLM returns only the continuation; llama.cpp returns prefill + continuation.
    vllm = {"message": {"content": "2+2\n</think>\n4"}}
    llama = {"message": {"content": "<think>\n2+2\n</think>\n4"}}
    assert parse_chat_choice(vllm, "<think>\n")[:2] == parse_chat_choice(llama, "<think>\n")[:2] == ("4", "2+2")


def test_a_prefilled_partial_thought_stays_in_the_reasoning() -> None:
    # vLLM's reasoning parser returns only the continuation of a prefilled thought in `reasoning`.
    vllm = {"message": {"content": "\nThe answer is 2.", "reasoning": " 1 is 2.\n"}}
    llama = {"message": {"content": "<think>\n1 plus 1 is 2.\n</think>\nThe answer is 2."}}
    expected = ("The answer is 2.", "1 plus 1 is 2.")
    assert parse_chat_choice(vllm, "<think>\n1 plus")[:2] == parse_chat_choice(llama, "<think>\n1 plus")[:2] == expected


def test_unclosed_thinking_is_all_reasoning() -> None:
    assert split_inline_thinking("<think>still going") == ("still going", "")


def test_logprobs_both_shapes() -> None:
    content = {"content": [{"token": "a", "logprob": -0.5, "id": 7, "top_logprobs": [{"token": "a", "logprob": -0.5}]}]}
    legacy = {"tokens": ["a", "b"], "token_logprobs": [None, -1.0], "top_logprobs": [None, {"b": -1.0}]}
    (tok,) = parse_logprobs(content) or ()
    assert (tok.token, tok.logprob, tok.token_id, tok.top) == ("a", -0.5, 7, (("a", -0.5),))
    first, second = parse_logprobs(legacy) or ()
    assert second.logprob == -1.0 and second.top == (("b", -1.0),)
    assert parse_logprobs(None) is None


def test_usage_with_reasoning_tokens() -> None:
    usage = parse_usage(
        {
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 9,
                "completion_tokens_details": {"reasoning_tokens": 5},
            }
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, usage.total_tokens) == (
        3,
        9,
        5,
        12,
    )


def test_refusals_and_empty_outputs_are_not_cacheable() -> None:
    assert is_cacheable_choice({"message": {"content": "x"}})
    assert is_cacheable_choice({"message": {"content": "", "reasoning": "thinking"}})
    assert not is_cacheable_choice({"message": {"content": ""}})
    assert not is_cacheable_choice({"message": {"content": None, "refusal": "no"}})
    assert not is_cacheable_choice({"message": {"content": "x"}, "finish_reason": "content_filter"})
    assert not is_cacheable_choice({"text": ""})
    assert not is_cacheable_choice({"text": "", "finish_reason": "length"})
    assert is_cacheable_choice({"text": "", "finish_reason": "stop"})  # stopped at once, on purpose


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_ten = parse_retry_after(formatdate(time.time() + 10, usegmt=True))
    assert in_ten is not None and 8 <= in_ten <= 11


def test_public_url_drops_credentials() -> None:
    assert public_url("https://user:secret@Host.example:8443/v1/?token=x") == "https://host.example:8443/v1"


def test_non_finite_waits_are_no_waits() -> None:
    for value in ("inf", "-inf", "nan", "Infinity", "1e400"):
        assert parse_retry_after(value) is None and parse_reset(value) is None, value
    assert retry_wait_s({"retry-after-ms": "inf"}) is None
    assert retry_wait_s({"x-ratelimit-remaining-requests": "nan", "x-ratelimit-reset-requests": "1s"}) is None
    assert parse_retry_after("Mon, 01 Jan 99999 00:00:00 GMT") is None
