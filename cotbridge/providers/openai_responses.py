"""OpenAI's hosted models through the openai SDK and the Responses API.

Wire facts (OpenAI API reference, "Responses"): the request takes `input` messages and `max_output_tokens`, which
bounds visible and reasoning tokens together; reasoning models take `reasoning.effort` and return at most a
summary of their reasoning (`reasoning.summary = "auto"`), as `summary_text` parts of a `reasoning` output item;
they reject `temperature` and `top_p`. Usage counts `input_tokens`, `output_tokens` and
`output_tokens_details.reasoning_tokens`. Log-probs come with `include = ["message.output_text.logprobs"]`. The
answer is translated to the chat-completion shape the rest of cotbridge reads; the raw response is kept beside it
under `response`, so the cache holds it whole.
"""

from __future__ import annotations

from typing import Any

from cotbridge.errors import UnsupportedOperation
from cotbridge.providers.sdk import DEFAULT_THINKING_BUDGET, SDKProvider, plain_headers, sampling_free
from cotbridge.providers.transport import TransientFailure
from cotbridge.providers.wire import RESPONSES

_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def responses_request(body: dict[str, Any], *, reasoning_model: bool) -> dict[str, Any]:
    """A chat-completion body as a Responses API request.

    `reasoning_effort` (the chat parameter) becomes `reasoning.effort`; `thinking_budget` (cotbridge's, default
    DEFAULT_THINKING_BUDGET) is added to max_tokens for reasoning models, so max_tokens stays the answer's room.
    Responses has no `n`, `seed` or `stop`: cotbridge sends one request per sample; `seed` is left out (the
    cache is what keeps reruns identical); `stop` is refused, since dropping it would change the answer.
    """
    rest = sampling_free(body) if reasoning_model else {k: v for k, v in body.items() if k != "seed"}
    if "stop" in rest:
        raise ValueError("the Responses API has no 'stop' parameter")
    request: dict[str, Any] = {"model": rest.pop("model"), "input": rest.pop("messages"), "store": False}
    budget = int(rest.pop("thinking_budget", DEFAULT_THINKING_BUDGET))
    max_tokens = rest.pop("max_tokens", None)
    if max_tokens is not None:
        request["max_output_tokens"] = int(max_tokens) + (budget if reasoning_model else 0)
    effort = rest.pop("reasoning_effort", None)
    if reasoning_model:
        reasoning = {"summary": "auto", **rest.pop("reasoning", {})}
        if effort is not None:
            reasoning["effort"] = effort
        request["reasoning"] = reasoning
    if rest.pop("logprobs", False):
        request["include"] = ["message.output_text.logprobs"]
        request["top_logprobs"] = int(rest.pop("top_logprobs", 0))
    request.update(rest)
    return request


def chat_shape(response: dict[str, Any]) -> dict[str, Any]:
    """A Responses API answer in chat-completion shape (one choice), with the raw answer under `response`."""
    summaries: list[str] = []
    texts: list[str] = []
    refusals: list[str] = []
    logprobs: list[dict[str, Any]] = []
    for item in response.get("output") or ():
        if item.get("type") == "reasoning":
            summaries.extend(part.get("text", "") for part in item.get("summary") or ())
        elif item.get("type") == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part.get("text", ""))
                    logprobs.extend(part.get("logprobs") or ())
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal", ""))
    if "output" not in response:
        raise ValueError("the response has no 'output'")
    status = response.get("status")
    reason = (response.get("incomplete_details") or {}).get("reason")
    finish = _FINISH.get(str(reason), str(reason or "length")) if status == "incomplete" else "stop"
    usage = response.get("usage") or {}
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if summaries:
        message["reasoning"] = "\n\n".join(summaries)
    if refusals:
        message["refusal"] = "\n".join(refusals)
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if logprobs:
        choice["logprobs"] = {"content": logprobs}
    return {
        "id": response.get("id"),
        "object": "chat.completion",
        "model": response.get("model"),
        "choices": [choice],
        "usage": {
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
            "completion_tokens_details": {
                "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens", 0)
            },
        },
        "response": response,
    }


class OpenAIResponsesProvider(SDKProvider):
    """`openai/<model>`: the Responses API through the openai SDK, its retries off (ours are the only ones)."""

    _client: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            import openai  # lazy: the SDK costs a noticeable import time and only openai/ models need it

            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.endpoint.base_url,
                max_retries=0,
                timeout=self.endpoint.timeout_s,
                # The SDK follows redirects by default, and a redirected POST comes back as a GET.
                http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False),
            )
        return self._client

    def shape(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return responses_request(body, reasoning_model=self.capabilities.reasoning_model)
        except ValueError as exc:
            raise UnsupportedOperation(f"{self.model_name}: {exc}; leave it out for OpenAI models") from None

    async def _attempt(self, request: dict[str, Any]) -> dict[str, Any]:
        request = dict(request)
        model, messages = request.pop("model"), request.pop("input")
        raw = await self._sdk().responses.with_raw_response.create(model=model, input=messages, extra_body=request)
        self.endpoint.note_rate_limit_headers(plain_headers(raw.headers))
        body = raw.http_response.content
        if len(body) > self.endpoint.max_response_bytes:
            raise self.endpoint.too_large(self.model_name, raw.http_response.status_code, f"{len(body):,} bytes")
        try:
            return chat_shape(RESPONSES.parse(body))
        except ValueError as exc:  # like a malformed body on any endpoint: worth another try
            raise TransientFailure(self.endpoint.malformed(self.model_name, None, f"the answer {exc}")) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
