"""Answer removal: verbatim by construction, checked anyway; leaks found; the released filtered CoTs audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbridge import Bridge, Score
from cotbridge.cot.answer_removal import find_leaks, kept_verbatim, remove_answer, remove_answer_by_rule
from cotbridge.records import Explanation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "genex-medcalc" / "without_answer"

COT = (
    "The patient weighs 70 kg and is 1.75 m tall. BMI is weight over height squared. "
    "So BMI = 70 / 3.0625 = 22.86. Therefore the answer is 22.86 kg/m^2."
)


def explanation(cot: str = COT, answer: str = "22.86") -> Explanation:
    score = Score(parsed=answer, normalized=answer, correct=True)
    return Explanation("p1", "vllm/m", "think-tags", cot, f"Answer: {answer}", score, temperature=0.0)


def test_rule_filter_drops_answer_sentences_and_keeps_hints() -> None:
    filtered = remove_answer_by_rule(explanation())
    assert filtered.cot == "The patient weighs 70 kg and is 1.75 m tall. BMI is weight over height squared."
    assert filtered.removal is not None and filtered.removal.dropped == (2, 3)
    assert filtered.removal.verbatim and filtered.removal.leaks == ()


def test_leaks_compare_numbers_as_numbers() -> None:
    assert find_leaks("We get 22.860 in the end. Next.", 22.86) == ("We get 22.860 in the end.",)
    assert find_leaks("Height 1.75 m.", 22.86) == ()


def test_verbatim_check_catches_a_rewritten_sentence() -> None:
    assert kept_verbatim(COT, "The patient weighs 70 kg and is 1.75 m tall.  \nBMI is weight over height squared.")
    assert not kept_verbatim(COT, "The patient weighs 70 kilograms. BMI is weight over height squared.")
    assert not kept_verbatim(COT, "BMI is weight over height squared. The patient weighs 70 kg and is 1.75 m tall.")


def test_verbatim_check_reads_text_not_sentence_boundaries() -> None:
    source = "Weight is 70 kg  \nheight is 1.75 m.  \nSo BMI is 22.86.  \nthat is normal."
    assert kept_verbatim(source, "Weight is 70 kg\nheight is 1.75 m. that is normal.")
    assert kept_verbatim(source, ["Weight is 70 kg", "  \nheight is 1.75 m.", "  \nthat is normal."])
    assert not kept_verbatim(source, "Weight is 70 kg\nheight is 1.80 m. that is normal.")
    assert not kept_verbatim(source, "height is 1.75 m. Weight is 70 kg")


async def test_llm_filter_keeps_only_source_sentences(llama_server: str) -> None:
    async with Bridge() as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        filtered = await remove_answer(explanation(), m)
    report = filtered.removal
    assert report is not None and report.verbatim
    assert report.method.startswith(("llm:llamacpp/smollm2-135m", "rule (filter"))
    assert kept_verbatim(COT, filtered.cot)


def _released(name: str, folder: Path = DATA) -> list[dict[str, str]]:
    path = folder / name
    if not path.exists():
        pytest.skip(f"released data not found at {path} (it lives in ../shared/data beside the repository)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_released_qwq_filter_leaks_and_rewrites() -> None:
    """The paper's filter left the answer in many QwQ CoTs and did not keep sentences verbatim."""
    rows = _released("Qwen_QwQ-32B_zero_shot_original_without_answer.jsonl")
    leaked = verbatim = 0
    for row in rows:
        filtered, source, answer = row["LLM Thinking Without Answer"], row["LLM Thinking"], row["LLM Answer"]
        try:
            value: float | str = float(answer)
        except ValueError:
            value = answer
        leaked += bool(find_leaks(filtered, value))
        verbatim += kept_verbatim(source, filtered)
    assert len(rows) == 100
    assert 25 <= leaked <= 75, f"{leaked} of 100 filtered QwQ CoTs still state the answer"
    assert verbatim < 100, "some filtered CoTs must have been rewritten rather than cut"


def test_the_released_dapo_filter_mostly_cut_rather_than_rewrote() -> None:
    """The verbatim check reads kept text in order: 85 of the paper's filtered DAPO CoTs only cut sentences."""
    rows = _released("BytedTsinghua-SIA_DAPO-Qwen-32B_zero_shot_original_without_answer.jsonl")
    verbatim = sum(kept_verbatim(row["LLM Thinking"], row["LLM Thinking Without Answer"]) for row in rows)
    assert 80 <= verbatim <= 90, f"{verbatim} of 100 filtered DAPO CoTs kept verbatim"


PAPER_MODELS = (
    "nvidia_Nemotron-Research-Reasoning-Qwen-1.5B_zero_shot_original",
    "open-thoughts_OpenThinker-7B_zero_shot_original",
    "openai_gpt-oss-20b_zero_shot_original_low",
    "Qwen_QwQ-32B_zero_shot_original",
    "BytedTsinghua-SIA_DAPO-Qwen-32B_zero_shot_original",
)


def test_the_rule_filter_is_verbatim_on_the_released_cots() -> None:
    flagged = []
    for name in PAPER_MODELS:
        for row in _released(f"{name}.jsonl", DATA.parent / "outputs"):
            source = explanation(row["LLM Thinking"] or "", row["LLM Answer"])
            report = remove_answer_by_rule(source).removal
            assert report is not None
            if not report.verbatim:
                flagged.append((name, row["Row Number"]))
    assert flagged == [], f"{len(flagged)} of 500 rule-filtered CoTs flagged as rewritten"
