"""Anthropic and Gemini through litellm, the optional extra `hosted` (pinned exactly; imported only when used).

How thinking is asked for follows the model's capabilities (`thinking.control`), never its name:
- "budget" (Claude 3.7 to 4.5, Gemini 2.5): `thinking = {type: "enabled", budget_tokens}`, which litellm sends as
  Anthropic's thinking or Gemini's `thinkingConfig.thinkingBudget`; the budget is checked against
  `thinking.min_budget` / `max_budget` before anything is sent (Anthropic refuses budget_tokens below 1024:
  https://platform.claude.com/docs/en/build-with-claude/extended-thinking).
- "adaptive" (Claude 4.6 and later): `thinking = {type: "adaptive", display: "summarized"}` when "summarized" is one
  of `thinking.display` (from Opus 4.7 on the display defaults to "omitted", an empty thinking block:
  https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking), and `output_config.effort` for an
  effort. litellm passes both as given; its own `reasoning_effort` and legacy-budget mappings are not used, since
  it rewrites a budget for these models into adaptive thinking without `display`. A budget goes only to a model
  whose capabilities give a `min_budget` (4.6 still takes budgets); the others refuse `type: "enabled"`.
- "level" (Gemini 3): `reasoning_effort`, which litellm turns into `thinkingConfig.thinkingLevel` with
  includeThoughts; litellm drops a budget for these models with only a warning
  (https://ai.google.dev/gemini-api/docs/thinking#thinking-levels), so a budget is refused here instead.
Thinking counts against the output limit (`max_tokens_includes_cot`), so the budget (or, without one, the default
room) is added to max_tokens, which stays the answer's room. Parameters the capabilities list as rejected or ignored
are left out: a rejected one fails the request, an ignored one would only split the cache. A reply whose thinking
came back partly as `redacted_thinking` blocks (encrypted, unreadable) is marked `reasoning_redacted`, so the CoT
made from it is known to have gaps. litellm's cache and retries stay off: cotbridge has its own. litellm's own HTTP
client follows redirects and reads bodies of any size; each model gets one held to the transport's rules instead
(`providers/httpx_guard.py`).
"""

from __future__ import annotations

import os
from typing import Any

from cotbridge.errors import ConfigError, UnsupportedOperation
from cotbridge.providers.httpx_guard import ResponseGuard, raised_by_guard
from cotbridge.providers.sdk import DEFAULT_THINKING_BUDGET, SDKProvider, plain_headers

DEFAULT_ANSWER_TOKENS = 1024  # Anthropic requires max_tokens
# reasoning_effort as a thinking budget in tokens, for models that take budgets (Anthropic's minimum is 1024)
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
        """The vendor request: thinking asked for as the capabilities say (see the module docstring), max_tokens
        raised by the thinking's room, and parameters the vendor rejects or ignores left out. Raises
        UnsupportedOperation (or ConfigError for a budget out of range) before anything is sent."""
        request = dict(body)
        if request.pop("logprobs", None):
            raise UnsupportedOperation(f"{self.model_name}: {self.name} returns no log-probs")
        request.pop("top_logprobs", None)
        budget = request.pop("thinking_budget", None)
        effort = request.pop("reasoning_effort", None)
        if "thinking" not in request:  # a caller's own `thinking` goes as given
            request.update(self._thinking(effort, None if budget is None else int(budget)))
        room = self._room(request)
        caps = self.capabilities
        if room and caps.max_tokens_includes_cot:
            request["max_tokens"] = int(request.get("max_tokens") or DEFAULT_ANSWER_TOKENS) + room
        for name in (*caps.rejected_params, *caps.ignored_params):
            request.pop(name, None)
        if not caps.seed:
            request.pop("seed", None)
        if self.name == "anthropic":
            request.setdefault("max_tokens", DEFAULT_ANSWER_TOKENS)
        return request

    def _thinking(self, effort: str | None, budget: int | None) -> dict[str, Any]:
        """The request fields that ask for thinking, by `thinking.control`."""
        thinking = self.capabilities.thinking
        control = thinking.control
        if control == "none":
            if effort is not None or budget is not None:
                raise UnsupportedOperation(
                    f"{self.model_name}: its capabilities say it is not asked to think (thinking.control 'none'), "
                    "so reasoning_effort and thinking_budget cannot be sent; override its capabilities if it thinks"
                )
            return {}
        if control == "budget" or (control == "adaptive" and budget is not None and thinking.min_budget is not None):
            return {"thinking": {"type": "enabled", "budget_tokens": self._budget(effort, budget)}}
        if budget is not None:
            raise UnsupportedOperation(
                f"{self.model_name} takes no thinking budget (thinking.control {control!r}); "
                f"give reasoning_effort instead{self._efforts_hint()}"
            )
        effort = effort if effort is not None else thinking.asked_effort
        self._check_effort(effort)
        if control == "adaptive":
            asked: dict[str, Any] = {"type": "adaptive"}
            if "summarized" in thinking.display:
                asked["display"] = "summarized"
            return {"thinking": asked, **({"output_config": {"effort": effort}} if effort else {})}
        if control == "level":
            # Without an effort the model keeps its own default level; the thoughts are asked for either way.
            return {"reasoning_effort": effort} if effort else {"thinking": {"type": "enabled"}}
        raise UnsupportedOperation(f"{self.model_name}: thinking.control {control!r} has no {self.name} request")

    def _budget(self, effort: str | None, budget: int | None) -> int:
        """The thinking budget: an effort's (EFFORT_BUDGETS), else the one asked for, else the default."""
        if effort is not None:
            if effort not in EFFORT_BUDGETS:
                raise UnsupportedOperation(
                    f"{self.model_name}: reasoning_effort {effort!r} is not one of {sorted(EFFORT_BUDGETS)}; "
                    "or give thinking_budget in tokens"
                )
            return EFFORT_BUDGETS[effort]
        return DEFAULT_THINKING_BUDGET if budget is None else budget

    def _check_budget(self, tokens: int) -> None:
        """A budget out of the model's range is refused here, as the vendor would refuse it."""
        low, high = self.capabilities.thinking.min_budget, self.capabilities.thinking.max_budget
        if low is not None and tokens < low:
            raise ConfigError(
                f"{self.model_name}: a thinking budget of {tokens} tokens is below the vendor's minimum of {low} "
                f"(capabilities thinking.min_budget); set thinking_budget to {low} or more"
            )
        if high is not None and tokens > high:
            raise ConfigError(
                f"{self.model_name}: a thinking budget of {tokens} tokens is above the vendor's maximum of {high} "
                f"(capabilities thinking.max_budget); set thinking_budget to {high} or less"
            )

    def _check_effort(self, effort: str | None) -> None:
        efforts = self.capabilities.thinking.efforts
        if effort is not None and efforts and effort not in efforts:
            raise UnsupportedOperation(
                f"{self.model_name}: reasoning_effort {effort!r} is not one it takes ({', '.join(efforts)})"
            )

    def _efforts_hint(self) -> str:
        efforts = self.capabilities.thinking.efforts
        return f" (it takes {', '.join(efforts)})" if efforts else ""

    def _room(self, request: dict[str, Any]) -> int:
        """Output tokens the thinking may take: an enabled budget (checked against the model's range; Gemini's
        dynamic -1 gets the default room), else the default room while thinking is asked for, else none."""
        thinking = request.get("thinking")
        if not isinstance(thinking, dict):
            return DEFAULT_THINKING_BUDGET if "reasoning_effort" in request else 0
        budget = thinking.get("budget_tokens")
        if thinking.get("type") == "enabled" and isinstance(budget, int):
            self._check_budget(budget)
            return budget if budget >= 0 else DEFAULT_THINKING_BUDGET
        return 0 if thinking.get("type") == "disabled" else DEFAULT_THINKING_BUDGET

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
        return mark_redacted(answer)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


def mark_redacted(answer: dict[str, Any]) -> dict[str, Any]:
    """Marks (`reasoning_redacted: true`) each choice whose thinking came back partly as Anthropic's
    `redacted_thinking` blocks: encrypted, so the reasoning text litellm joined from the readable blocks has gaps
    (https://platform.claude.com/docs/en/build-with-claude/extended-thinking)."""
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        blocks = message.get("thinking_blocks") or ()
        if any(isinstance(block, dict) and block.get("type") == "redacted_thinking" for block in blocks):
            message["reasoning_redacted"] = True
    return answer
