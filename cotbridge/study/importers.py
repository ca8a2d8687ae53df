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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotbridge.datasets.answers import score_medcalc
from cotbridge.datasets.medcalc import load_medcalc
from cotbridge.errors import ConfigError
from cotbridge.records import Condition, Score, Variant
from cotbridge.study.config import model_aliases
from cotbridge.study.explanations import CotKind
from cotbridge.study.ratings import read_ratings
from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow

_TRANSFER = re.compile(r"^(?P<source>.+)_thoughts_to_(?P<target>.+)_zero_shot_without_answer\.jsonl$")
_OWN = re.compile(
    r"^(?P<model>.+)_zero_shot_(?P<kind>empty|original_low|original|with_sampling_without_answer|with_sampling"
    r"|ensembled_thought_without_answer_(?P<ensemble>gen_.+))\.jsonl$"
)


# The short names of the release's models: the paper's own where it has them (NRR, OpenT, OSS, QwQ, DAPO, as its user
# study labels CoTs), short forms of the model ids for the others (the three GRPO-trained MedCalc models end in -G).
GENEX_ALIASES = {
    "nvidia_Nemotron-Research-Reasoning-Qwen-1.5B": "NRR",
    "open-thoughts_OpenThinker-7B": "OpenT",
    "openai_gpt-oss-20b": "OSS",
    "Qwen_QwQ-32B": "QwQ",
    "BytedTsinghua-SIA_DAPO-Qwen-32B": "DAPO",
    "deepseek-ai_DeepSeek-R1-Distill-Qwen-1.5B": "R1D",
    "meta-llama_Llama-3.2-3B-Instruct": "Llama",
    "Qwen_Qwen2.5-1.5B-Instruct": "Qwen",
    "_disk_u_koyena_medcalc-deepseek-r1-distill-qwen-1.5b-inst-grpo": "R1D-G",
    "_disk_u_koyena_medcalc-llama-3-3b-inst-grpo": "Llama-G",
    "_disk_u_koyena_medcalc-qwen-2.5-1.5b-inst-grpo": "Qwen-G",
}
# An ensemble file's name: gen_<generators>_eval_<evaluator>, each by its short name in lower case.
_ENSEMBLE_NAME = re.compile(r"^gen_(?P<generators>.+)_eval_(?P<evaluator>[^_]+)$")
# Where the release keeps its user study: one rating a row (participant, item, shown CoT, criterion, value, label).
USER_STUDY_CSV = Path("user_study") / "expanded_data_all_rows.csv"


@dataclass(frozen=True, slots=True)
class GenexFile:
    """What one released file holds."""

    path: Path
    condition: Condition
    variant: Variant
    evaluator: str  # the model that answered
    source: str  # the model whose CoT it was given, the ensemble's name for ensemble, "" for empty


def classify(path: Path) -> GenexFile | None:
    """The condition of a released file from its name, or None for a file that is not an output file."""
    name = path.name
    if match := _TRANSFER.match(name):
        return GenexFile(path, Condition.TRANSFER, Variant.WITHOUT_ANSWER, match["target"], match["source"])
    if match := _OWN.match(name):
        model, kind = match["model"], match["kind"]
        if kind == "empty":
            return GenexFile(path, Condition.EMPTY, Variant.FULL, model, "")
        if kind in ("original", "original_low"):
            return GenexFile(path, Condition.DEFAULT, Variant.FULL, model, model)
        if kind == "with_sampling":
            return GenexFile(path, Condition.SAMPLED, Variant.FULL, model, model)
        if kind == "with_sampling_without_answer":
            return GenexFile(path, Condition.SAMPLED, Variant.WITHOUT_ANSWER, model, model)
        return GenexFile(path, Condition.ENSEMBLE, Variant.WITHOUT_ANSWER, model, match["ensemble"])
    return None


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8-sig") as handle:
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
    """What an import stored: files read, trials, source explanations, transfer rows whose target crashed (kept as
    missing answers), and the models taken as evaluators."""

    files: int = 0
    trials: int = 0
    explanations: int = 0
    crashed: int = 0
    evaluators: tuple[str, ...] = ()
    ratings: int = 0  # human ratings of the user study, when the release has it


@dataclass(frozen=True, slots=True)
class _Answered:
    """One released answer to one problem, re-scored; `text` is the explanation that came with it."""

    problem_id: str
    text: str | None
    answer: str | None
    score: Score
    question: str | None = None  # the problem's patient note and question, from the test set

    def trial(self, study: str, item: GenexFile, condition: Condition) -> TrialRow:
        return TrialRow(
            study=study,
            condition=condition,
            variant=item.variant,
            evaluator=item.evaluator,
            source=item.source,
            sample_index=0,
            problem_id=self.problem_id,
            mode="imported",
            text=self.text,
            answer=self.answer,
            normalized=self.score.normalized,
            correct=self.score.correct,
        )

    def explanation(self, study: str, source: str, kind: str, variant: Variant, cot: str | None) -> ExplanationRow:
        return ExplanationRow(
            study=study,
            problem_id=self.problem_id,
            source=source,
            kind=kind,
            sample_index=0,
            variant=variant,
            cot=cot,
            final_text=self.text,
            answer=self.answer,
            normalized=self.score.normalized,
            correct=self.score.correct,
            truncated=False,
            prompt_text=self.question,  # the release keeps no prompt; the explorer shows the question from this
        )


class _Rescorer:
    """Scores released answers with the MedCalc rules against their problems of the v1.0 test set."""

    def __init__(self, medcalc_csv: str | Path) -> None:
        self.csv = medcalc_csv
        self.problems = {p.id: p for p in load_medcalc(medcalc_csv)}

    def __call__(self, path: Path, problem_id: str, answer: str | None, text: str | None) -> _Answered:
        problem = self.problems.get(problem_id)
        if problem is None:
            raise ConfigError(
                f"{path.name}, Row Number {problem_id}: not in {self.csv}; is it the MedCalc-Bench v1.0 test set?"
            )
        meta = problem.meta
        score = score_medcalc(
            answer,
            calculator_id=meta["calculator_id"],
            gold=str(problem.gold),
            lower=meta["lower_limit"],
            upper=meta["upper_limit"],
        )
        question = "\n\n".join(str(m["content"]) for m in problem.prompt if m["role"] == "user") or None
        return _Answered(problem_id, text, answer, score, question)


@dataclass(slots=True)
class _FileRows:
    """The rows of one released file."""

    trials: list[TrialRow] = field(default_factory=list)
    explanations: list[ExplanationRow] = field(default_factory=list)
    crashed: int = 0


def _transfer_rows(study: str, item: GenexFile, rescore: _Rescorer) -> _FileRows:
    """A transfer file: the target's answer given the source's filtered CoT (a trial), and the source's own CoT and
    answer, which ride along in every row (an explanation: its answer matters for source-to-target agreement)."""
    rows = _FileRows()
    for row in _rows(item.path):
        problem_id = str(row.get("Row Number"))
        own = _answer_text(row.get("LLM Answer"))
        source = rescore(item.path, problem_id, own, own)
        rows.explanations.append(
            source.explanation(study, item.source, CotKind.GREEDY, Variant.WITHOUT_ANSWER, row.get("LLM Raw Thinking"))
        )
        # A target that crashed in the reference run left no answer: kept, as a missing answer.
        crashed = "Target Answer" not in row
        rows.crashed += crashed
        answer = None if crashed else _answer_text(row.get("Target Answer"))
        text = None if crashed else _answer_text(row.get("Target Explanation"))
        target = rescore(item.path, problem_id, answer, text)
        rows.trials.append(target.trial(study, item, item.condition))
        if item.source == item.evaluator:
            # Default without answer: the model's own filtered CoT given back to it.
            rows.trials.append(target.trial(study, item, Condition.DEFAULT))
    return rows


def _own_rows(study: str, item: GenexFile, rescore: _Rescorer, *, evaluator: bool) -> _FileRows:
    """A file of a model's own answers: trials for an evaluator, explanations (source answers) for the others."""
    rows = _FileRows()
    for row in _rows(item.path):
        problem_id = str(row.get("Row Number"))
        answer = _answer_text(row.get("LLM Answer"))
        given = rescore(item.path, problem_id, answer, _answer_text(row.get("LLM Explanation")))
        if evaluator:
            rows.trials.append(given.trial(study, item, item.condition))
        else:
            cot = _answer_text(row.get("LLM Thinking"))
            rows.explanations.append(given.explanation(study, item.evaluator, item.condition, item.variant, cot))
    return rows


def _released_files(folder: str | Path) -> tuple[Path, list[GenexFile]]:
    """The folder holding the output files, and every output file in it."""
    root = Path(folder)
    outputs = root / "outputs" if (root / "outputs").is_dir() else root
    files = [f for f in (classify(p) for p in sorted(outputs.glob("*.jsonl"))) if f is not None]
    if not files:
        raise ConfigError(f"{outputs}: no released output files (*_zero_shot_*.jsonl) found; pass the genex folder")
    return outputs, files


def import_genex(
    folder: str | Path,
    results: ResultsDB,
    *,
    medcalc_csv: str | Path,
    study: str = "genex",
) -> ImportSummary:
    """Loads the released outputs under `folder` (its `outputs/` subfolder or the folder itself) into `results`,
    re-scoring every answer with the MedCalc rules against the v1.0 test set at `medcalc_csv`."""
    outputs, files = _released_files(folder)
    rescore = _Rescorer(medcalc_csv)
    # The evaluators are the models that receive transferred CoTs (every model, when no file transfers).
    targets = {f.evaluator for f in files if f.condition == Condition.TRANSFER}
    evaluators = sorted(targets or {f.evaluator for f in files})
    summary = ImportSummary(evaluators=tuple(evaluators))
    results.save_study(study, {"imported_from": str(outputs), "evaluators": evaluators, **genex_names(files)})
    sources: dict[tuple[str, str], ExplanationRow] = {}
    for item in files:
        if item.condition == Condition.TRANSFER:
            rows = _transfer_rows(study, item, rescore)
            for row in rows.explanations:
                _keep_best_copy(sources, row)
        else:
            rows = _own_rows(study, item, rescore, evaluator=item.evaluator in evaluators)
            results.put_explanations(rows.explanations)
            summary.explanations += len(rows.explanations)
        results.put_trials(rows.trials)
        summary.files += 1
        summary.trials += len(rows.trials)
        summary.crashed += rows.crashed
    results.put_explanations(list(sources.values()))
    summary.explanations += len(sources)
    ratings = Path(folder) / USER_STUDY_CSV
    if ratings.is_file():  # a release without its user study imports all the same
        stored = read_ratings(ratings)
        results.put_ratings(study, stored)
        summary.ratings = len(stored)
    return summary


def genex_names(files: list[GenexFile]) -> dict[str, Any]:
    """The study config's `models` (release name -> model id, alias) and `ensembles` (name -> alias, generators,
    evaluators), with the paper's short names: what reports show instead of the release's file names. An ensemble is
    named as the paper's user study labels it, generators then evaluator: QwQ+DAPO/OSS."""
    names = sorted({f.evaluator for f in files} | {f.source for f in files if f.condition != Condition.ENSEMBLE} - {""})
    aliases = model_aliases(names, {name: GENEX_ALIASES.get(name) for name in names})
    by_short = {alias.lower(): name for name, alias in aliases.items()}
    ensembles: dict[str, dict[str, Any]] = {}
    for name in sorted({f.source for f in files if f.condition == Condition.ENSEMBLE}):
        match = _ENSEMBLE_NAME.match(name)
        generators = match["generators"].split("_") if match else []
        members = [*generators, match["evaluator"]] if match else []
        if not match or any(m not in by_short for m in members):
            ensembles[name] = {"alias": name, "generators": [], "evaluators": []}  # a name it cannot read: kept
            continue
        ensembles[name] = {
            "alias": f"{'+'.join(aliases[by_short[g]] for g in generators)}/{aliases[by_short[match['evaluator']]]}",
            "generators": [by_short[g] for g in generators],
            "evaluators": [by_short[match["evaluator"]]],
        }
    models = {name: {"model": name, "alias": alias} for name, alias in aliases.items()}
    return {"models": models, "ensembles": ensembles, "aliases": aliases}


def _keep_best_copy(sources: dict[tuple[str, str], ExplanationRow], row: ExplanationRow) -> None:
    """A source's CoT rides along in every transfer file of that source, and some copies lost it when the reference
    run crashed: keep one copy per source and problem, one that has its CoT wherever any copy does."""
    key = (row.source, row.problem_id)
    kept = sources.get(key)
    if kept is None or (not (kept.cot or "").strip() and (row.cot or "").strip()):
        sources[key] = row
