"""Pydantic models of the wire formats cotbridge reads, checked where a response enters cotbridge.

Only the fields cotbridge parses are modelled; every other field is kept as it came (servers add many). A body
outside these formats is a `WireError` (a ValueError), which the providers turn into a MalformedResponseError for
that one request, so a malformed answer never surfaces later as an AttributeError or a failed cache write.

Two repairs instead of refusals, both lossless for any text a model can produce:
- a message `content` given as a list of text parts (OpenAI allows parts; Mistral sends them) is joined into one
  string; a part of any other type (image, thinking, ...) is refused, since dropping it would lose output;
- a lone UTF-16 surrogate (a `\\ud800` escape without its pair) cannot be stored as UTF-8; it becomes U+FFFD,
  as undecodable bytes do in Python, and a warning is logged.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Required

from pydantic import AfterValidator, BeforeValidator, ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

log = logging.getLogger("cotbridge")

_OPEN = ConfigDict(extra="allow")
_TEXT_PART_TYPES = frozenset({"text", "output_text"})


class WireError(ValueError):
    """A response body outside the wire format it should have."""


def _join_text_parts(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    texts = []
    for part in value:
        if (
            not isinstance(part, dict)
            or part.get("type") not in _TEXT_PART_TYPES
            or not isinstance(part.get("text"), str)
        ):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ValueError(f"content part of type {kind!r} is not text")
        texts.append(part["text"])
    return "".join(texts)


Content = Annotated[str | None, BeforeValidator(_join_text_parts)]


@with_config(_OPEN)
class TopLogprob(TypedDict, total=False):
    token: str
    logprob: Required[float]


@with_config(_OPEN)
class LogprobEntry(TypedDict, total=False):
    token: str
    logprob: Required[float]
    id: int | None
    bytes: list[int] | None
    top_logprobs: list[TopLogprob] | None


@with_config(_OPEN)
class Logprobs(TypedDict, total=False):
    """Both shapes: chat (and llama.cpp) `content[]` entries, and the legacy parallel lists."""

    content: list[LogprobEntry] | None
    tokens: list[str] | None
    token_logprobs: list[float | None] | None
    top_logprobs: list[dict[str, float] | None] | None
    text_offset: list[int] | None


@with_config(_OPEN)
class CompletionTokensDetails(TypedDict, total=False):
    reasoning_tokens: int | None


@with_config(_OPEN)
class Usage(TypedDict, total=False):
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    completion_tokens_details: CompletionTokensDetails | None


@with_config(_OPEN)
class ChatMessage(TypedDict, total=False):
    role: str | None
    content: Content
    reasoning: str | None
    reasoning_content: str | None
    refusal: str | None


@with_config(_OPEN)
class ChatChoice(TypedDict, total=False):
    index: int
    message: Required[ChatMessage]
    finish_reason: str | None
    logprobs: Logprobs | None


@with_config(_OPEN)
class ChatCompletion(TypedDict, total=False):
    choices: Required[list[ChatChoice]]
    usage: Usage | None


@with_config(_OPEN)
class TextChoice(TypedDict, total=False):
    index: int
    text: Required[str]
    finish_reason: str | None
    logprobs: Logprobs | None


@with_config(_OPEN)
class TextCompletion(TypedDict, total=False):
    choices: Required[list[TextChoice]]
    usage: Usage | None


# Together's completions with `echo`: the prompt, and with `logprobs` its log-probs, in a top-level `prompt[]`
# beside the choices, without text offsets (https://docs.together.ai/reference/completions-1).
@with_config(_OPEN)
class PromptLogprobs(TypedDict, total=False):
    tokens: list[str] | None
    token_ids: list[int] | None
    token_logprobs: list[float | None] | None


@with_config(_OPEN)
class PromptPart(TypedDict, total=False):
    text: str | None
    logprobs: PromptLogprobs | None


@with_config(_OPEN)
class PromptFieldCompletion(TextCompletion, total=False):
    prompt: list[PromptPart] | None


# OpenRouter's chat: the reasoning as `reasoning` and/or `reasoning_details`, typed reasoning.text (the reasoning
# as the vendor sent it), reasoning.summary or reasoning.encrypted (nothing readable)
# (https://openrouter.ai/docs/guides/best-practices/reasoning-tokens).
@with_config(_OPEN)
class ReasoningDetail(TypedDict, total=False):
    type: Required[str]
    text: str | None
    summary: str | None


READABLE_DETAILS = {"reasoning.text": "text", "reasoning.summary": "summary"}


def _reasoning_from_details(message: dict[str, Any]) -> dict[str, Any]:
    """Without a `reasoning` string, the readable details stand in for it (in their order); what kind of
    reasoning it is (raw or a summary) is the model's capability, not the detail's type."""
    details = message.get("reasoning_details")
    if message.get("reasoning") or not details:
        return message
    texts = [detail.get(READABLE_DETAILS.get(detail["type"], "")) for detail in details]
    joined = "\n\n".join(text for text in texts if isinstance(text, str) and text)
    return {**message, "reasoning": joined} if joined else message


@with_config(_OPEN)
class RoutedChatMessage(ChatMessage, total=False):
    reasoning_details: list[ReasoningDetail] | None


@with_config(_OPEN)
class RoutedChatChoice(TypedDict, total=False):
    index: int
    message: Required[Annotated[RoutedChatMessage, AfterValidator(_reasoning_from_details)]]
    finish_reason: str | None
    logprobs: Logprobs | None


@with_config(_OPEN)
class RoutedChatCompletion(TypedDict, total=False):
    choices: Required[list[RoutedChatChoice]]
    usage: Usage | None


@with_config(_OPEN)
class ModelList(TypedDict, total=False):
    data: list[Any] | None


@with_config(_OPEN)
class TokenIds(TypedDict):
    tokens: list[int]


@with_config(_OPEN)
class TokenPieces(TypedDict):
    """llama.cpp's /tokenize with `with_pieces`: ids with their text (or byte list) pieces."""

    tokens: list[int | dict[str, Any]]


@with_config(_OPEN)
class RenderedPrompt(TypedDict):
    prompt: str


# OpenAI's Responses API (the parts cotbridge translates to a chat completion).
@with_config(_OPEN)
class SummaryPart(TypedDict, total=False):
    text: str


@with_config(_OPEN)
class OutputPart(TypedDict, total=False):
    type: str
    text: str
    refusal: str
    logprobs: list[LogprobEntry] | None


@with_config(_OPEN)
class OutputItem(TypedDict, total=False):
    type: str
    summary: list[SummaryPart] | None
    content: list[OutputPart] | None


@with_config(_OPEN)
class OutputTokensDetails(TypedDict, total=False):
    reasoning_tokens: int | None


@with_config(_OPEN)
class ResponsesUsage(TypedDict, total=False):
    input_tokens: int | None
    output_tokens: int | None
    output_tokens_details: OutputTokensDetails | None


@with_config(_OPEN)
class IncompleteDetails(TypedDict, total=False):
    reason: str | None


@with_config(_OPEN)
class ResponsesAnswer(TypedDict, total=False):
    id: str | None
    model: str | None
    status: str | None
    output: Required[list[OutputItem]]
    incomplete_details: IncompleteDetails | None
    usage: ResponsesUsage | None


def repair_surrogates(value: Any) -> tuple[Any, int]:
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD, and how many strings changed."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), 1
        return value, 0
    if isinstance(value, list):
        changed = 0
        items = []
        for item in value:
            repaired, n = repair_surrogates(item)
            items.append(repaired)
            changed += n
        return (items, changed) if changed else (value, 0)
    if isinstance(value, dict):
        changed = 0
        pairs = []
        for key, item in value.items():
            new_key, n = repair_surrogates(key)
            repaired, m = repair_surrogates(item)
            pairs.append((new_key, repaired))
            changed += n + m
        return (dict(pairs), changed) if changed else (value, 0)
    return value, 0


def _describe(error: ValidationError) -> str:
    """The first problems of a validation, without the offending values (they may be large)."""
    problems = []
    for item in error.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "the body"
        problems.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


class Wire:
    """One wire format: `parse` takes the body's bytes, `check` an already decoded body; both return the body
    with the modelled fields validated (and repaired, see the module's docstring) or raise WireError."""

    def __init__(self, name: str, shape: Any) -> None:
        self.name = name
        self.adapter: TypeAdapter[Any] = TypeAdapter(shape)
        self._validate_json = self.adapter.validate_json

    def parse(self, body: bytes) -> Any:
        try:
            return self._validate_json(body)
        except ValidationError as error:
            if error.errors(include_url=False, include_input=False)[0]["type"] != "json_invalid":
                raise WireError(f"is not {self.name}: {_describe(error)}") from None
        # The strict JSON parser refuses lone surrogates, which Python's accepts: repair those, or say it is no JSON.
        try:
            decoded = json.loads(body)
        except ValueError:
            snippet = body[:80].decode("utf-8", "replace")
            raise WireError(f"is not valid JSON (starts {snippet!r})") from None
        return self.check(decoded)

    def check(self, decoded: Any) -> Any:
        decoded, repaired = repair_surrogates(decoded)
        if repaired:
            log.warning("%d string(s) of a response held lone surrogates, replaced by U+FFFD", repaired)
        try:
            return self.adapter.validate_python(decoded)
        except ValidationError as error:
            raise WireError(f"is not {self.name}: {_describe(error)}") from None


JSON = Wire("JSON", Any)
CHAT = Wire("a chat completion", ChatCompletion)
TEXT = Wire("a text completion", TextCompletion)
PROMPT_FIELD_TEXT = Wire("a text completion", PromptFieldCompletion)
ROUTED_CHAT = Wire("a chat completion", RoutedChatCompletion)
MODELS = Wire("a model list", ModelList)
TOKEN_IDS = Wire("a token list", TokenIds)
TOKEN_PIECES = Wire("a token list", TokenPieces)
PROMPT = Wire("a rendered prompt", RenderedPrompt)
RESPONSES = Wire("a Responses API answer", ResponsesAnswer)
