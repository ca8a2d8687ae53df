"""Anthropic and Gemini through litellm, the optional extra `hosted` (pinned exactly; imported only when used).

Wire facts (Anthropic "Extended thinking", Google "Gemini thinking"): thinking is asked for with a token budget
(`thinking = {type: "enabled", budget_tokens}`; litellm maps it to Gemini's `thinkingConfig`), the budget counts
against the output limit, and the reasoning comes back as Claude 4's summarized (Claude 3.7's full) thinking blocks
or Gemini's thought summaries, which litellm puts in `message.reasoning_content`. Anthropic rejects sampling
parameters while thinking and has no `seed`. litellm's cache and retries stay off: cotbridge has its own.
litellm's own HTTP client follows redirects and reads bodies of any size; each model gets one held to the
transport's rules instead (`providers/httpx_guard.py`).
"""

from __future__ import annotations

import os
from typing import Any

from cotbridge.errors import ConfigError, UnsupportedOperation
from cotbridge.providers.httpx_guard import ResponseGuard, raised_by_guard
from cotbridge.providers.sdk import DEFAULT_THINKING_BUDGET, SDKProvider, plain_headers, sampling_free

DEFAULT_ANSWER_TOKENS = 1024  # Anthropic requires max_tokens
# reasoning_effort as a thinking budget in tokens (Anthropic's minimum budget is 1024)
EFFORT_BUDGETS = {"low": 1024, "medium": 2048, "high": 4096}


def import_litellm() -> Any:
    """litellm, set up for cotbridge: the bundled price map (no network fetch at import), no debug printing."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise ConfigError(
            "anthropic/ and gemini/ models go through litellm, which is not installed; "
            "install the extra: pip install 'cotbridge[hosted]'"
        ) from None
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMProvider(SDKProvider):
    """`anthropic/<model>` and `gemini/<model>` through `litellm.acompletion`."""

    _http: Any = None

    def _client(self) -> Any:
        """litellm's HTTP handler for this model (made in the running loop, on first use), redirects off and its
        responses guarded; litellm's other settings (SSL, proxies, its transport) stay as litellm makes them."""
        if self._http is None:
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            guard = ResponseGuard(self.endpoint, self.model_name)
            self._http = AsyncHTTPHandler(
                timeout=self.endpoint.timeout_s, event_hooks=guard.event_hooks(), follow_redirects=False
            )
        return self._http

    def shape(self, body: dict[str, Any]) -> dict[str, Any]:
        """Thinking on for thinking families and whenever `reasoning_effort` is given (budget: the request's
        `thinking`, else `reasoning_effort` by EFFORT_BUDGETS, else `thinking_budget`, else the default), with
        the budget added to max_tokens so max_tokens stays the answer's room; parameters the vendor rejects
        left out."""
        request = dict(body)
        if request.pop("logprobs", None):
            raise UnsupportedOperation(f"{self.model_name}: {self.name} returns no log-probs")
        request.pop("top_logprobs", None)
        budget = int(request.pop("thinking_budget", DEFAULT_THINKING_BUDGET))
        effort = request.pop("reasoning_effort", None)
        if effort is not None:
            if effort not in EFFORT_BUDGETS:
                raise UnsupportedOperation(
                    f"{self.model_name}: reasoning_effort {effort!r} is not one of {sorted(EFFORT_BUDGETS)}; "
                    "or give thinking_budget in tokens"
                )
            budget = EFFORT_BUDGETS[effort]
        thinks = self.capabilities.reasoning_visibility != "none" or effort is not None
        if thinks and "thinking" not in request:
            request["thinking"] = {"type": "enabled", "budget_tokens": budget}
        thinking = request.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            answer_tokens = int(request.get("max_tokens") or DEFAULT_ANSWER_TOKENS)
            request["max_tokens"] = answer_tokens + int(thinking.get("budget_tokens", budget))
            if self.name == "anthropic":
                request = sampling_free(request)
        if self.name == "anthropic":
            request.pop("seed", None)
            request.setdefault("max_tokens", DEFAULT_ANSWER_TOKENS)
        return request

    async def _attempt(self, request: dict[str, Any]) -> dict[str, Any]:
        litellm = import_litellm()
        params = dict(request)
        params.pop("model", None)
        try:
            response = await litellm.acompletion(
                model=f"{self.name}/{self.served_model}",
                api_base=self.endpoint.base_url,
                api_key=self._api_key,
                timeout=self.endpoint.timeout_s,
                num_retries=0,
                max_retries=0,
                caching=False,
                client=self._client(),
                **params,
            )
        except Exception as exc:
            if (refused := raised_by_guard(exc)) is not None:
                raise refused from None
            raise
        hidden = getattr(response, "_hidden_params", None) or {}
        self.endpoint.note_rate_limit_headers(plain_headers(hidden.get("additional_headers"), "llm_provider-"))
        answer: dict[str, Any] = response.model_dump(mode="json")
        return answer

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
