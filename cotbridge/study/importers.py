"""Importers: other people's released outputs into a results DB, re-scored with cotbridge's own rules.

`import_genex` reads the MedCalc outputs released with "Do explanations generalize across large reasoning
models?" (Pal, Bau, Singh; arXiv 2601.11517): one JSON Lines file per model and condition. File names decide the
condition: `M_zero_shot_empty` (empty), `M_zero_shot_original[_low]` (default), `M_zero_shot_with_sampling`
(sampled), `M_..._ensembled_thought_without_answer_gen_X_Y_eval_Z` (ensemble), and
`S_thoughts_to_M_zero_shot_without_answer` (transfer from S; with S = M it is also "default" without answer).
Evaluators are the models that receive transferred CoTs; the other models' own outputs are kept as
explanations (their answers matter for source-to-target agreement).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotbridge.datasets.answers import score_medcalc
from cotbridge.datasets.medcalc import load_medcalc
from cotbridge.errors import ConfigError
from cotbridge.records import Score
from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow

_TRANSFER = re.compile(r"^(?P<source>.+)_thoughts_to_(?P<target>.+)_zero_shot_without_answer\.jsonl$")
_OWN = re.compile(
    r"^(?P<model>.+)_zero_shot_(?P<kind>empty|original_low|original|with_sampling_without_answer|with_sampling"
    r"|ensembled_thought_without_answer_(?P<ensemble>gen_.+))\.jsonl$"
)


@dataclass(frozen=True, slots=True)
class GenexFile:
    """What one released file holds."""

    path: Path
    condition: str
    variant: str
    evaluator: str
    source: str


def classify(path: Path) -> GenexFile | None:
    """The condition of a released file from its name, or None for a file that is not an output file."""
    name = path.name
    if match := _TRANSFER.match(name):
        return GenexFile(path, "transfer", "without_answer", match["target"], match["source"])
    if match := _OWN.match(name):
        model, kind = match["model"], match["kind"]
        if kind == "empty":
            return GenexFile(path, "empty", "full", model, "")
        if kind in ("original", "original_low"):
            return GenexFile(path, "default", "full", model, model)
        if kind == "with_sampling":
            return GenexFile(path, "sampled", "full", model, model)
        if kind == "with_sampling_without_answer":
            return GenexFile(path, "sampled", "without_answer", model, model)
        return GenexFile(path, "ensemble", "without_answer", model, match["ensemble"])
    return None


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise ConfigError(f"{path}: line {n} is not JSON; is this a released output file?") from None


def _answer_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(slots=True)
class ImportSummary:
    files: int = 0
    trials: int = 0
    explanations: int = 0
    crashed: int = 0
    evaluators: tuple[str, ...] = ()


def import_genex(
    folder: str | Path,
    results: ResultsDB,
    *,
    medcalc_csv: str | Path,
    study: str = "genex",
) -> ImportSummary:
    """Loads the released outputs under `folder` (its `outputs/` subfolder or the folder itself) into `results`,
    re-scoring every answer with the MedCalc rules against the v1.0 test set at `medcalc_csv`."""
    root = Path(folder)
    outputs = root / "outputs" if (root / "outputs").is_dir() else root
    files = [f for f in (classify(p) for p in sorted(outputs.glob("*.jsonl"))) if f is not None]
    if not files:
        raise ConfigError(f"{outputs}: no released output files (*_zero_shot_*.jsonl) found; pass the genex folder")
    problems = {p.id: p for p in load_medcalc(medcalc_csv)}
    evaluators = sorted({f.evaluator for f in files if f.condition == "transfer"}) or sorted(
        {f.evaluator for f in files}
    )

    def rescore(row: dict[str, Any], answer: str | None, where: str) -> Score:
        problem_id = str(row.get("Row Number"))
        problem = problems.get(problem_id)
        if problem is None:
            raise ConfigError(f"{where}: Row Number {problem_id} is not in {medcalc_csv}; is it the v1.0 test set?")
        meta = problem.meta
        return score_medcalc(
            answer,
            calculator_id=meta["calculator_id"],
            gold=str(problem.gold),
            lower=meta["lower_limit"],
            upper=meta["upper_limit"],
        )

    summary = ImportSummary(evaluators=tuple(evaluators))
    results.save_study(study, {"imported_from": str(outputs), "evaluators": evaluators})
    for item in files:
        summary.files += 1
        trials: list[TrialRow] = []
        explanations: list[ExplanationRow] = []
        transfer = item.condition == "transfer"
        for row in _rows(item.path):
            problem_id = str(row.get("Row Number"))
            where = f"{item.path.name}, Row Number {problem_id}"
            if transfer:
                # The source's own answer and its filtered CoT ride along in every transfer row.
                own = _answer_text(row.get("LLM Answer"))
                own_score = rescore(row, own, where)
                explanations.append(
                    ExplanationRow(
                        study=study,
                        problem_id=problem_id,
                        source=item.source,
                        kind="greedy",
                        sample_index=0,
                        variant="without_answer",
                        cot=row.get("LLM Raw Thinking"),
                        final_text=own,
                        answer=own,
                        normalized=own_score.normalized,
                        correct=own_score.correct,
                        truncated=False,
                    )
                )
                crashed = "Target Answer" not in row
                answer = None if crashed else _answer_text(row.get("Target Answer"))
                text = None if crashed else _answer_text(row.get("Target Explanation"))
                summary.crashed += crashed
            else:
                answer = _answer_text(row.get("LLM Answer"))
                text = _answer_text(row.get("LLM Explanation"))
            score = rescore(row, answer, where)
            if item.evaluator not in evaluators:
                explanations.append(
                    ExplanationRow(
                        study=study,
                        problem_id=problem_id,
                        source=item.evaluator,
                        kind=item.condition,
                        sample_index=0,
                        variant=item.variant,
                        cot=_answer_text(row.get("LLM Thinking")),
                        final_text=text,
                        answer=answer,
                        normalized=score.normalized,
                        correct=score.correct,
                        truncated=False,
                    )
                )
                continue
            conditions = [item.condition]
            if transfer and item.source == item.evaluator:
                conditions.append("default")  # B1 without answer: the model's own filtered CoT given back to it
            for condition in conditions:
                trials.append(
                    TrialRow(
                        study=study,
                        condition=condition,
                        variant=item.variant,
                        evaluator=item.evaluator,
                        source=item.source,
                        sample_index=0,
                        problem_id=problem_id,
                        mode="imported",
                        text=text,
                        answer=answer,
                        normalized=score.normalized,
                        correct=score.correct,
                    )
                )
        results.put_trials(trials)
        results.put_explanations(explanations)
        summary.trials += len(trials)
        summary.explanations += len(explanations)
    return summary
