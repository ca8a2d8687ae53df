"""OpenAI's hosted models through the openai SDK and the Responses API.

Wire facts (API reference "Create a model response",
https://platform.openai.com/docs/api-reference/responses/create, and the reasoning guide,
https://developers.openai.com/api/docs/guides/reasoning): the request takes `input` messages and
`max_output_tokens`, which bounds visible and reasoning tokens together and is refused below 16 (a 400,
`integer_below_min_value`). Reasoning models take `reasoning.effort` (the values and the default per model are
capability data; GPT-5.1 and later default to `none`, which does not reason) and return at most a summary of their
reasoning (`reasoning.summary = "auto"`), as `summary_text` parts of a `reasoning` output item; they reject
`temperature` and `top_p`. An organisation that is not verified is refused summaries with a 400 naming
`param: "reasoning.summary"`. A response cut by `max_output_tokens` has status `incomplete` with
`incomplete_details.reason = "max_output_tokens"`, and may hold reasoning but no message. Usage counts
`input_tokens`, `output_tokens` and `output_tokens_details.reasoning_tokens`. Log-probs come with
`include = ["message.output_text.logprobs"]`. An `insufficient_quota` 429 is final (the transport's rule; the
error codes page, https://platform.openai.com/docs/guides/error-codes/api-errors). The answer is translated to the
chat-completion shape the rest of cotbridge reads; the raw response is kept beside it under `response`, so the
cache holds it whole.
"""

from __future__ import annotations

from typing import Any

from cotbridge.errors import UnsupportedOperation
from cotbridge.providers.base import Capabilities
from cotbridge.providers.capabilities import patched
from cotbridge.providers.httpx_guard import ResponseGuard, raised_by_guard
from cotbridge.providers.sdk import DEFAULT_THINKING_BUDGET, SDKProvider, error_text, plain_headers, sampling_free
from cotbridge.providers.transport import Endpoint, TransientFailure
from cotbridge.providers.wire import RESPONSES

_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
MIN_OUTPUT_TOKENS = 16  # the Responses API refuses a smaller max_output_tokens


def responses_request(
    body: dict[str, Any], *, reasoning_model: bool, summary: bool = True, asked_effort: str | None = None
) -> dict[str, Any]:
    """A chat-completion body as a Responses API request.

    `reasoning_effort` (the chat parameter) becomes `reasoning.effort`; without one a reasoning model is asked for
    `asked_effort` (None: the vendor's default). `summary`: ask a reasoning model for a summary of its reasoning.
    `thinking_budget` (cotbridge's, default DEFAULT_THINKING_BUDGET) is added to max_tokens for reasoning models, so
    max_tokens stays the answer's room; the API's floor of MIN_OUTPUT_TOKENS applies to that sum, so it only ever
    adds room (an answer asked for 4 tokens may get up to 16). Responses has no `n`, `seed` or `stop`: cotbridge
    sends one request per sample; `seed` is left out (the cache is what keeps reruns identical); `stop` is refused,
    since dropping it would change the answer.
    """
    rest = sampling_free(body) if reasoning_model else {k: v for k, v in body.items() if k != "seed"}
    if "stop" in rest:
        raise ValueError("the Responses API has no 'stop' parameter")
    request: dict[str, Any] = {"model": rest.pop("model"), "input": rest.pop("messages"), "store": False}
    budget = int(rest.pop("thinking_budget", DEFAULT_THINKING_BUDGET))
    max_tokens = rest.pop("max_tokens", None)
    if max_tokens is not None:
        request["max_output_tokens"] = max(MIN_OUTPUT_TOKENS, int(max_tokens) + (budget if reasoning_model else 0))
    effort = rest.pop("reasoning_effort", None)
    if reasoning_model:
        reasoning = {"summary": "auto"} if summary else {}
        reasoning.update(rest.pop("reasoning", {}))
        effort = effort if effort is not None else reasoning.get("effort", asked_effort)
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
    """`openai/<model>`: the Responses API through the openai SDK, its retries off (ours are the only ones), its
    HTTP client held to the transport's rules (no redirects, the size cap while reading)."""

    _client: Any = None
    _summaries_refused = False

    def __init__(
        self,
        name: str,
        model_name: str,
        served_model: str,
        endpoint: Endpoint,
        api_key: str,
        capabilities: Capabilities,
    ) -> None:
        super().__init__(name, model_name, served_model, endpoint, api_key, capabilities)
        # Requests are shaped by the capabilities the model was made with, so that cache keys stay put when a
        # refused summary changes `self.capabilities` mid-run; a rerun then finds every answer in the cache.
        self._shaped_by = capabilities

    def _sdk(self) -> Any:
        if self._client is None:
            import openai  # lazy: the SDK costs a noticeable import time and only openai/ models need it

            guard = ResponseGuard(self.endpoint, self.model_name)
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.endpoint.base_url,
                max_retries=0,
                timeout=self.endpoint.timeout_s,
                # The SDK follows redirects by default (a redirected POST comes back as a GET) and reads bodies of
                # any size.
                http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False, event_hooks=guard.event_hooks()),
            )
        return self._client

    def shape(self, body: dict[str, Any]) -> dict[str, Any]:
        caps = self._shaped_by
        try:
            return responses_request(
                body,
                reasoning_model=caps.reasoning_model,
                summary=caps.visibility != "none",
                asked_effort=caps.thinking.asked_effort,
            )
        except ValueError as exc:
            raise UnsupportedOperation(f"{self.model_name}: {exc}; leave it out for OpenAI models") from None

    async def _attempt(self, request: dict[str, Any]) -> dict[str, Any]:
        """One call; a summary refused to the organisation is asked once more without it, and not asked again."""
        if self._summaries_refused and _asks_summary(request):
            return await self._create(_without_summary(request))
        try:
            return await self._create(request)
        except Exception as exc:
            if not (_asks_summary(request) and _refuses_summary(exc)):
                raise
            self._refuse_summaries(exc)
        self.endpoint.stats.requests += 1  # the endpoint counted the call once; this is a second request in it
        return await self._create(_without_summary(request))

    async def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        params = dict(request)
        model, messages = params.pop("model"), params.pop("input")
        try:
            raw = await self._sdk().responses.with_raw_response.create(model=model, input=messages, extra_body=params)
        except Exception as exc:  # the guard's refusals come wrapped in the SDK's errors
            if (refused := raised_by_guard(exc)) is not None:
                raise refused from None
            raise
        self.endpoint.note_rate_limit_headers(plain_headers(raw.headers))
        try:
            answer = chat_shape(RESPONSES.parse(raw.http_response.content))
        except ValueError as exc:  # like a malformed body on any endpoint: worth another try
            raise TransientFailure(self.endpoint.malformed(self.model_name, None, f"the answer {exc}")) from None
        answer["vendor_request"] = request  # what was sent, the summary left out after a refusal
        return answer

    def _refuse_summaries(self, exc: Exception) -> None:
        """From now on: no summary asked, the model's CoT not visible, and a note saying why."""
        if self._summaries_refused:
            return
        self._summaries_refused = True
        self.capabilities = patched(self.capabilities, {"visibility": "none"})
        why = self.endpoint.redact(error_text(exc))[:300]
        self.endpoint.stats.note(
            f"{self.model_name}: OpenAI refused a reasoning summary ({why}); cotbridge asks without one from now "
            "on, so its CoT is not visible (CoT visible: none) and it cannot be a transfer source"
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _asks_summary(request: dict[str, Any]) -> bool:
    return "summary" in (request.get("reasoning") or {})


def _without_summary(request: dict[str, Any]) -> dict[str, Any]:
    reasoning = {k: v for k, v in request["reasoning"].items() if k != "summary"}
    return {**request, "reasoning": reasoning}


def _refuses_summary(exc: Exception) -> bool:
    """Whether an SDK error is the 400 that refuses reasoning summaries (an organisation not verified for them)."""
    return getattr(exc, "status_code", None) == 400 and getattr(exc, "param", None) == "reasoning.summary"
