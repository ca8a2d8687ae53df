"""Explain and answer: a model writes a CoT for a problem, and a model answers given a CoT (or none).

`prefill` puts the CoT in the evaluator's own reasoning channel: the problem is rendered through the server's
chat template, the channel is opened (unless the template already did), the CoT placed and the channel closed,
and those exact prompt bytes are sent as token ids; the answer is parsed from what the model generates after
them, never from the prompt or the CoT. `context` gives the CoT in the user message, for models that cannot
take foreign thinking.
"""

from __future__ import annotations

from typing import NamedTuple

from cotbridge.client import Model
from cotbridge.errors import ConfigError
from cotbridge.options import DEFAULT_ANSWER_TOKENS, DEFAULT_COT_TOKENS, InjectionMode
from cotbridge.records import Answer, Explanation, Problem, Usage

CONTEXT_TEMPLATE = (
    "{question}\n\nHere is a reasoning written for this problem. Use it to answer.\n<reasoning>\n{cot}\n</reasoning>"
)


def context_message(question: str, cot: str) -> str:
    """The user message of `context` injection: the CoT given as material, not as the model's own thinking."""
    return CONTEXT_TEMPLATE.format(question=question, cot=cot.strip())


def can_prefill(model: Model) -> bool:
    """Whether a foreign CoT can be placed as this model's own thinking: a format with a reasoning channel and a
    server that renders its chat template and takes token-id prompts."""
    caps = model.capabilities
    return model.thinking_format.can_prefill and caps.chat_template and caps.tokenize and caps.token_id_prompts


def resolve_mode(model: Model, mode: InjectionMode | None) -> InjectionMode:
    """The injection mode to use: the one asked for (checked), else the model's default, else what it can do."""
    mode = mode or model.injection
    if mode is None:
        return "prefill" if can_prefill(model) else "context"
    if mode == "prefill" and not can_prefill(model):
        why = (
            f"its thinking format {model.thinking_format.name!r} has no reasoning channel to prefill"
            if not model.thinking_format.can_prefill
            else f"its provider {model.provider.name!r} cannot render the chat template and take token ids"
        )
        raise ConfigError(
            f"{model.name} cannot take a CoT in 'prefill' mode: {why}. Use mode='context', or set its "
            "thinking format (thinking_format=...) if the model does have a reasoning channel."
        )
    if mode not in ("prefill", "context"):
        raise ConfigError(f"injection mode {mode!r} for {model.name}: use 'prefill' or 'context'")
    return mode


async def explain(
    model: Model,
    problem: Problem,
    *,
    temperature: float = 0.0,
    seed: int | None = None,
    max_tokens: int = DEFAULT_COT_TOKENS,
    answer_max_tokens: int = DEFAULT_ANSWER_TOKENS,
    answer_prefix: str = "",
) -> Explanation:
    """The model's CoT for a problem (greedy by default), with the answer it gave after it."""
    (first,) = await explain_samples(
        model,
        problem,
        1,
        temperature=temperature,
        seed=seed,
        max_tokens=max_tokens,
        answer_max_tokens=answer_max_tokens,
        answer_prefix=answer_prefix,
    )
    return first


async def explain_samples(
    model: Model,
    problem: Problem,
    samples: int,
    *,
    temperature: float = 1.0,
    seed: int | None = None,
    max_tokens: int = DEFAULT_COT_TOKENS,
    answer_max_tokens: int = DEFAULT_ANSWER_TOKENS,
    answer_prefix: str = "",
) -> list[Explanation]:
    """`samples` CoTs of `model` for `problem` (each cached as its own sample, so a rerun reuses them), each with
    the final answer the model gave after it."""
    fmt = model.thinking_format
    if not can_prefill(model):
        chats = await model.chat(
            problem.prompt, temperature=temperature, seed=seed, n=samples, max_tokens=max_tokens + answer_max_tokens
        )
        chats = chats if isinstance(chats, list) else [chats]
        return [
            Explanation(
                problem_id=problem.id,
                source_model=model.name,
                format=fmt.name,
                cot=(c.reasoning or "").strip(),
                final_text=c.text,
                answer=problem.check(c.text),
                temperature=temperature,
                seed=seed,
                sample_index=c.sample_index,
                truncated=c.finish_reason == "length" and not c.text,
                answer_truncated=c.finish_reason == "length",
                redacted=c.reasoning_redacted,
                usage=c.usage,
            )
            for c in chats
        ]
    rendered = await model.render(problem.prompt)
    prompt_text = rendered + fmt.opening(rendered)
    ids = await model.tokenize(prompt_text)
    # The CoT ends where the model closes its channel (or at the token cap); the answer after it is greedy, as
    # in the paper's "sampled, then greedy answer", and is asked exactly like a transferred CoT's answer.
    generated = await model.complete(
        ids, temperature=temperature, seed=seed, n=samples, max_tokens=max_tokens, stop=[fmt.stop]
    )
    generations = generated if isinstance(generated, list) else [generated]
    explanations = []
    for gen in generations:
        cot = fmt.extract(gen.text)[0] or ""
        after = await _answer_after(model, rendered, cot, answer_max_tokens, answer_prefix)
        explanations.append(
            Explanation(
                problem_id=problem.id,
                source_model=model.name,
                format=fmt.name,
                cot=cot,
                final_text=after.text,
                answer=problem.check(after.text),
                temperature=temperature,
                seed=seed,
                sample_index=gen.sample_index,
                truncated=gen.finish_reason == "length",
                answer_truncated=after.truncated,
                prompt_text=prompt_text,
                usage=gen.usage + after.usage,
            )
        )
    return explanations


class _After(NamedTuple):
    text: str
    prompt_text: str
    cached: bool
    usage: Usage
    truncated: bool  # the answer was cut off at its token cap


async def _answer_after(model: Model, rendered: str, cot: str, max_tokens: int, answer_prefix: str) -> _After:
    """The greedy answer after `cot` placed in the model's own channel, with the exact prompt it was asked with.

    The answer text is `answer_prefix` plus what the model generated: never the prompt or the CoT."""
    prompt_text = rendered + model.thinking_format.injected(rendered, cot) + answer_prefix
    generated = await model.complete(await model.tokenize(prompt_text), temperature=0.0, max_tokens=max_tokens)
    text = answer_prefix + generated.text
    fmt = model.thinking_format
    if fmt.final_end and fmt.final_end in text:
        text = text[: text.find(fmt.final_end)]
    return _After(text.strip(), prompt_text, generated.cached, generated.usage, generated.finish_reason == "length")


async def answer(
    model: Model,
    problem: Problem,
    explanation: Explanation | str | None,
    *,
    mode: InjectionMode | None = None,
    max_tokens: int = DEFAULT_ANSWER_TOKENS,
    cot_max_tokens: int = DEFAULT_COT_TOKENS,
    answer_prefix: str = "",
) -> Answer:
    """The model's greedy answer given a CoT: an Explanation (transfer), "" (the empty condition), or None (the
    model reasons itself). `answer_prefix` (e.g. "Answer:") starts the answer for the model and is part of the
    text the answer is parsed from: a format cue, the same for every condition, never content from the CoT."""
    if explanation is None:
        own = await explain(
            model, problem, max_tokens=cot_max_tokens, answer_max_tokens=max_tokens, answer_prefix=answer_prefix
        )
        return Answer(
            problem_id=problem.id,
            model=model.name,
            text=own.final_text,
            score=problem.check(own.final_text),
            mode="own",
            source_model=model.name,
            prompt_text=own.prompt_text,
            usage=own.usage,
            truncated=own.truncated or own.answer_truncated,
        )
    cot = explanation if isinstance(explanation, str) else explanation.cot
    source = None if isinstance(explanation, str) else explanation.source_model
    chosen = resolve_mode(model, mode)
    if chosen == "prefill":
        rendered = await model.render(problem.prompt)
        after = await _answer_after(model, rendered, cot, max_tokens, answer_prefix)
        return Answer(
            problem_id=problem.id,
            model=model.name,
            text=after.text,
            score=problem.check(after.text),
            mode="prefill",
            source_model=source,
            prompt_text=after.prompt_text,
            cached=after.cached,
            usage=after.usage,
            truncated=after.truncated,
        )
    messages = [dict(m) for m in problem.prompt]
    if cot.strip():
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[last_user]["content"] = context_message(messages[last_user]["content"], cot)
    # The prefix is a cue the model continues; an API that cannot continue a message gets none.
    prefix = answer_prefix if model.capabilities.assistant_prefill else ""
    if prefix:
        messages.append({"role": "assistant", "content": prefix})
    reply = await model.chat(messages, temperature=0.0, max_tokens=max_tokens)
    text = prefix + reply.text
    return Answer(
        problem_id=problem.id,
        model=model.name,
        text=text,
        score=problem.check(text),
        mode="context",
        source_model=source,
        cached=reply.cached,
        usage=reply.usage,
        truncated=reply.finish_reason == "length",
    )
