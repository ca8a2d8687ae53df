"""Instruction Induction (Honovich et al.): infer the instruction behind five input/output demonstrations.

Layout of the data folder: `annotations/<task>.json` is `{"annotations": [gold instruction, ...]}` and
`induction_input/<task>.json` is `{"examples": {"1": {"input": prompt, "metadata": {...}}, ...}}`, each prompt
listing five demonstrations and ending "The instruction was". One problem per (task, example); its id is
"<task>/<example key>" and its gold answer the task's list of annotated instructions.

Checking: the model's instruction (`extract_instruction`) is compared with every gold instruction and the best
score is kept as `Score.similarity`; `Score.metric` names the similarity used: "bertscore" (rescaled BERTScore
F1) when `bert_score` and its model are installed locally, else "token-f1" (SQuAD-style token-overlap F1).
`Score.correct` is `similarity >= DEFAULT_THRESHOLD` (0.5): for token F1 that means roughly half the words
shared with some annotation; for rescaled BERTScore, clearly above unrelated text (about 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotbridge.datasets.answers import extract_instruction, normalize_text
from cotbridge.datasets.similarity import Similarity, default_similarity
from cotbridge.errors import ConfigError
from cotbridge.records import Message, Problem, Score

DATASET = "instruction-induction"
DEFAULT_THRESHOLD = 0.5

SYSTEM_PROMPT = (
    "You will see input/output pairs produced by following one instruction. Work out what that instruction "
    "was. End your reply with a final line of the form 'Instruction: <the instruction>'."
)

_FIX = "point instruction-induction: at the folder holding annotations/ and induction_input/"


@dataclass(frozen=True)
class InstructionChecker:
    """Scores an induced instruction against the gold instructions (see the module docstring)."""

    gold: tuple[str, ...]
    similarity: Similarity
    threshold: float = DEFAULT_THRESHOLD

    def __call__(self, text: str) -> Score:
        instruction = extract_instruction(text)
        if instruction is None:
            return Score(parsed=None, normalized=None, correct=None, metric=self.similarity.name)
        best = self.similarity.best(instruction, list(self.gold))
        return Score(
            parsed=instruction,
            normalized=normalize_text(instruction),
            correct=best >= self.threshold,
            similarity=best,
            metric=self.similarity.name,
        )


def available_tasks(folder: str | Path) -> list[str]:
    """The task names that have both an annotation file and an induction-input file, sorted."""
    folder = Path(folder).expanduser()
    annotated = {p.stem for p in (folder / "annotations").glob("*.json")}
    return sorted(p.stem for p in (folder / "induction_input").glob("*.json") if p.stem in annotated)


def load_instruction_induction(
    folder: str | Path,
    tasks: list[str] | None = None,
    *,
    similarity: Similarity | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Problem]:
    """All problems of the chosen tasks (default: every task), task by task in the order given (or sorted),
    examples in file order. `similarity` defaults to `default_similarity()`."""
    folder = Path(folder).expanduser()
    if not (folder / "annotations").is_dir() or not (folder / "induction_input").is_dir():
        raise ConfigError(f"instruction-induction: {folder} has no annotations/ and induction_input/ folders; {_FIX}")
    known = available_tasks(folder)
    if not known:
        raise ConfigError(f"instruction-induction: {folder}: no task has both annotations/ and induction_input/ files")
    chosen = tasks or known
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ConfigError(
            f"instruction-induction: {folder}: unknown task(s) {', '.join(map(repr, unknown))}; "
            f"choose from: {', '.join(known)}"
        )
    similarity = similarity or default_similarity()
    problems: list[Problem] = []
    for task in chosen:
        gold = _annotations(folder / "annotations" / f"{task}.json")
        checker = InstructionChecker(gold=gold, similarity=similarity, threshold=threshold)
        for key, prompt, demos in _examples(folder / "induction_input" / f"{task}.json"):
            problems.append(
                Problem(
                    id=f"{task}/{key}",
                    dataset=DATASET,
                    prompt=induction_prompt(prompt),
                    gold=list(gold),
                    checker=checker,
                    meta={"task": task, "example": key, "demonstrations": demos, "threshold": threshold},
                )
            )
    return problems


def induction_prompt(prompt: str) -> list[Message]:
    """The chat messages for one induction prompt (the dataset's text, unchanged, as the user message)."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"instruction-induction: {path}: not a readable JSON file ({exc}); {_FIX}") from None


def _annotations(path: Path) -> tuple[str, ...]:
    data = _read_json(path)
    gold = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(gold, list) or not gold or not all(isinstance(g, str) and g.strip() for g in gold):
        raise ConfigError(
            f'instruction-induction: {path}: field "annotations" must be a non-empty list of instruction strings'
        )
    return tuple(g.strip() for g in gold)


def _examples(path: Path) -> list[tuple[str, str, str]]:
    """(key, prompt, demonstrations) per example of an induction-input file."""
    data = _read_json(path)
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, dict) or not examples:
        raise ConfigError(f'instruction-induction: {path}: field "examples" must be a non-empty object')
    rows = []
    for key, example in examples.items():
        prompt = example.get("input") if isinstance(example, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f'instruction-induction: {path}: example {key!r}: field "input" must be a prompt string')
        metadata = example.get("metadata")
        demos = metadata.get("examples_seen", "") if isinstance(metadata, dict) else ""
        rows.append((str(key), prompt, demos if isinstance(demos, str) else ""))
    return rows
