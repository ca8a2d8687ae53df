"""Thinking formats: detection, opening the channel once, injection and extraction for every family."""

from __future__ import annotations

import pytest

from cotbridge import ConfigError
from cotbridge.cot.transfer import context_message
from cotbridge.formats import FORMATS, detect_format
from cotbridge.providers import provider_spec


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("vllm/Qwen/QwQ-32B", "think-tags"),
        ("vllm/BytedTsinghua-SIA/DAPO-Qwen-32B", "think-tags"),
        ("vllm/nvidia/Nemotron-Research-Reasoning-Qwen-1.5B", "think-tags"),
        ("vllm/deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "think-tags"),
        ("vllm/open-thoughts/OpenThinker-7B", "openthinker"),
        ("vllm/openai/gpt-oss-20b", "harmony"),
        ("openai/o4-mini", "reasoning-field"),
        ("local/smollm2-135m", "none"),
    ],
)
def test_format_from_model_family(model: str, expected: str) -> None:
    spec, model_id = provider_spec(model)  # the provider's default applies when no family matches
    assert detect_format(model_id, None, spec.default_format).name == expected


def test_override_and_unknown_override() -> None:
    assert detect_format("local/smollm2-135m", "think-tags").name == "think-tags"
    with pytest.raises(ConfigError, match="unknown thinking format 'thinking'"):
        detect_format("local/smollm2-135m", "thinking")


def test_think_is_never_opened_twice() -> None:
    fmt = FORMATS["think-tags"]
    qwq_prompt = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n"
    plain_prompt = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    assert fmt.injected(qwq_prompt, "step one.") == "step one.\n</think>\n\n"
    assert fmt.injected(plain_prompt, "step one.") == "<think>\nstep one.\n</think>\n\n"
    # The empty condition: opened and immediately closed.
    assert fmt.injected(plain_prompt, "") == "<think>\n\n</think>\n\n"


def test_openthinker_and_harmony_channels() -> None:
    ot = FORMATS["openthinker"].injected("...assistant\n", "z")
    assert ot == "<|begin_of_thought|>\n\nz\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n"
    harmony = FORMATS["harmony"].injected("<|start|>assistant", "z")
    assert harmony == "<|channel|>analysis<|message|>z<|end|><|start|>assistant<|channel|>final<|message|>"


@pytest.mark.parametrize(
    ("name", "generated", "cot", "final"),
    [
        ("think-tags", "step 1. step 2.\n</think>\n\nAnswer: 4", "step 1. step 2.", "Answer: 4"),
        ("think-tags", "<think>\nstep\n</think>\nAnswer: 4", "step", "Answer: 4"),
        ("think-tags", "cut off mid", "cut off mid", ""),
        (
            "openthinker",
            "think\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\nAnswer: 4<|end_of_solution|>",
            "think",
            "Answer: 4",
        ),
        (
            "harmony",
            "think<|end|><|start|>assistant<|channel|>final<|message|>Answer: 4<|return|>",
            "think",
            "Answer: 4",
        ),
        ("none", "Answer: 4", None, "Answer: 4"),
    ],
)
def test_extract(name: str, generated: str, cot: str | None, final: str) -> None:
    assert FORMATS[name].extract(generated) == (cot, final)


def test_extract_from_a_reasoning_field() -> None:
    assert FORMATS["reasoning-field"].extract("Answer: 4", "I added.") == ("I added.", "Answer: 4")


def test_hosted_formats_cannot_take_a_foreign_cot() -> None:
    with pytest.raises(ConfigError, match="context"):
        FORMATS["reasoning-field"].injected("", "z")


def test_context_message_keeps_the_question_and_the_cot() -> None:
    text = context_message("What is 2+2?", "  2 and 2 make 4.\n")
    assert text.startswith("What is 2+2?") and "<reasoning>\n2 and 2 make 4.\n</reasoning>" in text
