"""Report data: a results DB read back into the paper's tables and more, as plain records for the renderers.

The numbers come from `cotbridge.analysis.metrics` (pure); this module gathers trials into per-condition data and
summarizes them; `cotbridge.analysis.render` turns a `Report` into a rich table, JSON, CSV or one HTML page.
Conditions are identified by a `ConditionKey`, shown as `empty`, `default`, `sampled` (`sampled#i` for further
samples), `transfer:SOURCE` or `ensemble:NAME`, each with its variant (`full` or `without_answer`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cotbridge.analysis import metrics
from cotbridge.analysis.human_ratings import rating_rows
from cotbridge.analysis.metrics import AnswerRow
from cotbridge.cot.ensemble import EnsembleEnd, StepChoice, chosen_by_generator, count_truncated
from cotbridge.errors import ConfigError
from cotbridge.records import Condition
from cotbridge.study.config import model_aliases
from cotbridge.study.ratings import StoredRating
from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow

Metric = Literal["paper", "strict"]

# One line per metric, said under every table of its numbers (terminal, JSON, HTML explorer). The paper's rule is
# Pal, Bau, Singh, "Do explanations generalize across large reasoning models?" (2026, arXiv 2601.11517).
METRIC_DEFINITIONS = {
    "paper": "the paper's rule (Pal, Bau, Singh 2026, arXiv 2601.11517): a pair agrees on a problem when the answer "
    "strings are identical or both are correct; problems where either answer is an error marker are skipped",
    "strict": "a pair agrees on a problem when both answers are valid and their normalized values are equal; problems "
    "where either answer is invalid (missing or unparseable) are left out and lower the coverage",
}
BREAKDOWN_DEFINITION = (
    "same✓ / same✗ / differ always use the strict metric: pairs giving the same correct value, the same wrong "
    "value, or different values"
)
ACCURACY_DEFINITION = (
    "accuracy: correct answers / all trials (failed, truncated and unparseable answers count as wrong)"
)
# Below this many paired points a correlation says little (the paper's user study gives 4).
FEW_POINTS = 10

# Conditions in the paper's order (A, B1, B2, C, D), which is also the order reports list them in.
_RANK = {condition: rank for rank, condition in enumerate(Condition)}
_BY_SOURCE = (Condition.TRANSFER, Condition.ENSEMBLE)


@dataclass(frozen=True, slots=True)
class ConditionKey:
    """What a report groups trials by: the condition, the CoT's source for transfer and ensemble trials (the
    generator, or the ensemble's name), and the sample for the other conditions ("" and 0 where they do not apply).
    """

    condition: Condition
    source: str = ""
    sample: int = 0

    @classmethod
    def of(cls, trial: TrialRow) -> ConditionKey:
        """The key of a stored trial; ConfigError for a condition cotbridge does not know."""
        return cls.parse(trial.condition, trial.source, trial.sample_index)

    @classmethod
    def parse(cls, condition: str, source: str, sample_index: int) -> ConditionKey:
        """The key of a trial's stored condition, source and sample index; ConfigError for an unknown condition."""
        try:
            known = Condition(condition)
        except ValueError:
            names = ", ".join(Condition)
            raise ConfigError(f"trial condition {condition!r} is not one of {names}") from None
        if known in _BY_SOURCE and source:
            return cls(known, source)
        return cls(known, sample=sample_index)

    @property
    def label(self) -> str:
        """How reports show the condition: `transfer:SOURCE`, `ensemble:NAME`, `sampled#i` or the plain name."""
        if self.source:
            return f"{self.condition}:{self.source}"
        if self.sample:
            return f"{self.condition}#{self.sample}"
        return str(self.condition)

    @property
    def sort_key(self) -> tuple[int, str, int]:
        """Orders keys as reports list them: by condition in the paper's order, then by source, then by sample."""
        return _RANK[self.condition], self.source, self.sample


# (condition, variant) -> evaluator -> problem id -> the evaluator's answer
GatheredData = dict[tuple[ConditionKey, str], dict[str, dict[str, AnswerRow]]]


@dataclass(slots=True)
class ConditionSummary:
    """One condition and variant's consistency by the report's `metric` (mean and population std over evaluator
    pairs, bootstrap CI over problems, coverage) and, always by the strict metric, the consistent-correct /
    consistent-wrong / inconsistent breakdown with its own coverage (`breakdown_coverage`)."""

    name: str
    variant: str
    metric: str
    mean: float
    std: float
    pairs: int
    ci_low: float
    ci_high: float
    coverage: float
    consistent_correct: float
    consistent_wrong: float
    inconsistent: float
    evaluators: int
    problems: int
    breakdown_coverage: float = math.nan
    display: str = ""  # the name with aliases, as reports show it (`transfer:QwQ`); `name` keeps the full names

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (nan as None) in which every number says its metric: the top-level ones are the report's
        (`metric`), the breakdown's are in `breakdown` with `"metric": "strict"`."""
        plain = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}
        breakdown = {"metric": "strict", "coverage": plain.pop("breakdown_coverage")}
        breakdown |= {k: plain.pop(k) for k in BREAKDOWN}
        return {**plain, "breakdown": breakdown}

    def columns(self) -> dict[str, Any]:
        """Flat columns named by their metric (`paper_mean`, `strict_inconsistent`, ...), for CSV."""
        data = self.as_json()
        breakdown = data.pop("breakdown")
        named = {k: v for k, v in data.items() if k not in METRIC_COLUMNS}
        named |= {f"{self.metric}_{k}": data[k] for k in METRIC_COLUMNS}
        return named | {f"strict_{k}": v for k, v in breakdown.items() if k != "metric"}


# The columns computed by the report's metric, and those of the strict breakdown.
METRIC_COLUMNS = ("mean", "std", "pairs", "ci_low", "ci_high", "coverage")
BREAKDOWN = ("consistent_correct", "consistent_wrong", "inconsistent")


@dataclass(slots=True)
class Report:
    """Everything a report shows about one study; `as_json()` is its JSON form."""

    study: str
    metric: str
    conditions: list[ConditionSummary] = field(default_factory=list)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # "label/variant" -> evaluator -> acc
    matrix: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> sources, targets, values
    ensembles: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> steps, chosen share, endings
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> per condition tokens and USD
    modes: dict[str, dict[str, int]] = field(default_factory=dict)  # evaluator -> injection mode -> trials
    failures: list[str] = field(default_factory=list)  # failed trials: where, the error's kind and message
    truncated: dict[str, int] = field(default_factory=dict)  # "label/variant" -> trials cut off at their token cap
    truncated_cots: dict[str, int] = field(default_factory=dict)  # "source/kind" -> generated CoTs cut off
    redacted_cots: dict[str, int] = field(default_factory=dict)  # "source/kind" -> CoTs with withheld reasoning
    aliases: dict[str, str] = field(default_factory=dict)  # [models] or [ensembles] name -> its alias
    legend: list[dict[str, Any]] = field(default_factory=list)  # alias, name, model id (or members), models first
    ratings: dict[str, Any] | None = None  # human ratings against consistency (`ratings_summary`), when there are any

    def alias(self, name: str) -> str:
        """A model's or ensemble's alias (the name itself when it has none)."""
        return self.aliases.get(name, name)

    def display(self, label: str) -> str:
        """A condition label (`transfer:SOURCE`, `ensemble:NAME`, `sampled#i`, ...) with its source's alias."""
        condition, sep, source = label.partition(":")
        return f"{condition}:{self.alias(source)}" if sep else label

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {
            "study": self.study,
            "metric": self.metric,
            "definitions": {
                self.metric: METRIC_DEFINITIONS[self.metric],
                "breakdown": BREAKDOWN_DEFINITION,
                "accuracy": ACCURACY_DEFINITION,
            },
            "legend": self.legend,
            "aliases": self.aliases,
            "conditions": [c.as_json() for c in self.conditions],
            "accuracy": self.accuracy,
            "matrix": self.matrix,
            "ensembles": self.ensembles,
            "costs": self.costs,
            "modes": self.modes,
            "failures": self.failures,
            "truncated": self.truncated,
            "truncated_cots": self.truncated_cots,
            "redacted_cots": self.redacted_cots,
            "ratings": self.ratings,
        }


def gather(trials: Iterable[TrialRow]) -> GatheredData:
    """(condition, variant) -> evaluator -> problem id -> AnswerRow, in the order the trials come. A failed or
    truncated trial is there as an invalid answer (the one invalid-answer policy), never left out."""
    data: GatheredData = defaultdict(lambda: defaultdict(dict))
    for t in trials:
        if t.truncated:
            row = AnswerRow(t.problem_id, None, None, None)
        else:
            row = AnswerRow(t.problem_id, t.answer, t.normalized if t.answer is not None else None, t.correct)
        data[(ConditionKey.of(t), t.variant)][t.evaluator][t.problem_id] = row
    return data


def _pick_study(results: ResultsDB, study: str | None) -> str:
    names = results.studies()
    if not names:
        raise ConfigError(f"{results.path} holds no study; run one with `cotbridge run` or import one")
    if study is None:
        return names[-1]
    if study not in names:
        raise ConfigError(f"{results.path} has no study {study!r}; it has {', '.join(names)}")
    return study


def build_report(
    results: ResultsDB,
    study: str | None = None,
    metric: Metric = "paper",
    seed: int = 0,
    ratings: Sequence[StoredRating] | None = None,
) -> Report:
    """Every condition's consistency (mean, std over pairs, bootstrap CI over problems, coverage), the breakdown,
    accuracy per evaluator, the generator x evaluator transfer matrix, ensemble runs, tokens and costs, trials
    per injection mode, the aliases reports show, and human ratings against consistency (`ratings`, else the
    study's stored ones). `study` defaults to the newest in the DB."""
    study = _pick_study(results, study)
    report = Report(study=study, metric=metric)
    trials = _TrialPass(report)
    for values in results.trial_values(study, _TrialPass.COLUMNS):
        trials.add(values)
    data = trials.data
    for (key, variant), condition in sorted(data.items(), key=lambda item: (item[0][0].sort_key, item[0][1])):
        report.accuracy[f"{key.label}/{variant}"] = {
            evaluator: result.accuracy for evaluator, result in sorted(metrics.accuracy(condition).items())
        }
        report.conditions.append(_summarize(key.label, variant, condition, metric, seed))
    report.matrix = transfer_matrices(data)
    report.ensembles = ensemble_summary(list(results.explanations(study, kind="ensemble")))
    cot_counts = results.explanation_counts(study)
    report.truncated_cots = truncated_cots(cot_counts)
    report.redacted_cots = redacted_cots(cot_counts)
    report.costs = cost_summary(results, study, trials.tokens, cot_counts, results.live_token_counts(study))
    config = results.study_config(study)
    report.aliases, report.legend = aliases_and_legend(config, {e for per in data.values() for e in per}, data)
    for summary in report.conditions:
        summary.display = report.display(summary.name)
    for grid in report.matrix.values():
        grid["source_aliases"] = [report.alias(s) for s in grid["sources"]]
        grid["target_aliases"] = [report.alias(t) for t in grid["targets"]]
    given = list(results.ratings(study)) if ratings is None else list(ratings)
    report.ratings = ratings_summary(report, given) if given else None
    return report


def aliases_and_legend(
    config: dict[str, Any], evaluators: set[str], data: GatheredData
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Name -> alias of every model and ensemble of a study, from its stored config (a study run before aliases
    gets the defaults), and the legend: alias, name and model id of each model, then each ensemble's members."""
    models = config.get("models") or {}
    sources = {key.source for key, _ in data if key.condition == Condition.TRANSFER and key.source}
    names = sorted(set(models) | evaluators | sources)
    stored = config.get("aliases") or {}
    given = {n: stored.get(n) or (models.get(n) or {}).get("alias") for n in names}
    aliases = model_aliases(names, given)
    legend: list[dict[str, Any]] = [
        {"alias": aliases[n], "name": n, "model": (models.get(n) or {}).get("model") or n} for n in names
    ]
    ensembles = config.get("ensembles") or {}
    ensemble_names = sorted(set(ensembles) | {key.source for key, _ in data if key.condition == Condition.ENSEMBLE})
    for name in ensemble_names:
        section = ensembles.get(name) or {}
        aliases[name] = section.get("alias") or name
        members = {role: [aliases.get(m, m) for m in section.get(role) or ()] for role in ("generators", "evaluators")}
        legend.append({"alias": aliases[name], "name": name, **members})
    return aliases, legend


def _rating_criteria(ratings: Sequence[StoredRating]) -> list[str]:
    """The paper's three Likert criteria when the ratings have them, else every criterion but the user study's
    best-overall rank (which is no rating)."""
    present = {r.criterion for r in ratings}
    return [c for c in metrics.LIKERT_CRITERIA if c in present] or sorted(present - {"best-overall"}) or sorted(present)


def ratings_summary(report: Report, ratings: Sequence[StoredRating]) -> dict[str, Any]:
    """Human ratings against consistency: per model_label its mean rating and count, the condition it names (a
    transfer source's or an ensemble's alias, or full name) with that condition's consistency (the full CoT's, the
    answer-removed one's when that is all there is), then Pearson, Spearman and Kendall over the matched labels with
    their n, a note when n is small, and the labels that name no condition."""
    criteria = _rating_criteria(ratings)
    rows = rating_rows(ratings)
    means = metrics.mean_ratings(rows, criteria)
    counts = Counter(r.model_label for r in rows if r.criterion in criteria)
    by_label: dict[str, tuple[str, str, float]] = {}  # condition label -> (name, variant, consistency)
    for c in sorted(report.conditions, key=lambda c: c.variant != "full"):
        by_label.setdefault(c.name, (c.name, c.variant, c.mean))
    targets: dict[str, str] = {}  # rating label -> condition label
    for label in by_label:
        condition, sep, source = label.partition(":")
        if sep and condition in (Condition.TRANSFER, Condition.ENSEMBLE):
            targets.setdefault(report.alias(source), label)
            targets.setdefault(source, label)
    matched: list[dict[str, Any]] = []
    unknown: list[str] = []
    usable: dict[str, str] = {}  # label -> condition, for labels whose condition has a consistency
    values: dict[str, float] = {}  # condition -> consistency
    for label in sorted(means, key=lambda name: (name not in targets, name)):
        if label not in targets:
            unknown.append(label)
            continue
        name, variant, value = by_label[targets[label]]
        consistency = None if math.isnan(value) else value
        if consistency is not None:
            usable[label], values[name] = name, consistency
        matched.append(
            {
                "label": label,
                "mean": means[label],
                "n": counts[label],
                "condition": name,
                "display": report.display(name),
                "variant": variant,
                "consistency": consistency,
            }
        )
    result = metrics.human_rating_correlation(values, rows, usable, criteria) if usable else None
    n = result.n if result else 0
    notes = []
    if n < FEW_POINTS:
        notes.append(f"n = {n} point(s), one per label: too few for a correlation to mean much")
    if unknown:
        known = sorted({report.alias(s) for s in targets if s in report.aliases})
        notes.append(f"label(s) {', '.join(unknown)} name no transfer source or ensemble; aliases: {', '.join(known)}")
    return {
        "criteria": criteria,
        "metric": report.metric,
        "labels": matched,
        "unknown": unknown,
        "n": n,
        "correlation": {
            name: None if math.isnan(found.value) else found.value
            for name, found in (("pearson", result.pearson), ("spearman", result.spearman), ("kendall", result.kendall))
        }
        if result
        else None,
        "notes": notes,
    }


class _TrialPass:
    """One pass over a study's trials, reading only the columns a report needs: the answers gathered as `gather`
    gathers them, tokens per evaluator and condition, trials per injection mode, truncated trials and the list of
    failures, each in the order the trials come."""

    COLUMNS = (
        "condition",
        "source",
        "sample_index",
        "variant",
        "evaluator",
        "problem_id",
        "mode",
        "answer",
        "normalized",
        "correct",
        "truncated",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "error_kind",
        "error",
        "live_prompt_tokens",
        "live_completion_tokens",
    )

    def __init__(self, report: Report) -> None:
        self.report = report
        self.data: GatheredData = defaultdict(lambda: defaultdict(dict))
        # evaluator -> label -> [prompt, completion, reasoning, live prompt, live completion] tokens
        self.tokens: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0, 0]))
        self._keys: dict[tuple[str, str, int], ConditionKey] = {}
        self._strings: dict[str, str] = {}  # one object per distinct problem id and answer: a million rows share them

    def add(self, values: tuple[Any, ...]) -> None:
        (condition, source, sample, variant, evaluator, pid, mode, answer, normalized, correct, truncated) = values[:11]
        prompt, completion, reasoning, error_kind, error, live_prompt, live_completion = values[11:]
        key = self._keys.get((condition, source, sample))
        if key is None:
            key = self._keys[(condition, source, sample)] = ConditionKey.parse(condition, source, sample)
        strings = self._strings
        pid = strings.setdefault(pid, pid)
        label = f"{key.label}/{variant}"
        if truncated:
            row = AnswerRow(pid, None, None, None)
            self.report.truncated[label] = self.report.truncated.get(label, 0) + 1
        elif answer is None:
            row = AnswerRow(pid, None, None, None if correct is None else bool(correct))
        else:
            answer = strings.setdefault(answer, answer)
            normalized = None if normalized is None else strings.setdefault(normalized, normalized)
            row = AnswerRow(pid, answer, normalized, None if correct is None else bool(correct))
        self.data[(key, variant)][evaluator][pid] = row
        counts = self.tokens[evaluator][label]
        counts[0] += prompt
        counts[1] += completion
        counts[2] += reasoning
        counts[3] += live_prompt or 0
        counts[4] += live_completion or 0
        per = self.report.modes.setdefault(evaluator, {})
        per[mode] = per.get(mode, 0) + 1
        if error_kind is not None:
            # Failed trials stay in the data above as invalid answers (coverage counts them); here they are listed.
            self.report.failures.append(
                f"{condition}/{variant} {evaluator} <- {source or '-'} #{sample}, problem {pid}: {error_kind}: {error}"
            )


def _summarize(
    name: str, variant: str, condition: metrics.ConditionData, metric: Metric, seed: int
) -> ConditionSummary:
    problems = len({pid for rows in condition.values() for pid in rows})
    if len(condition) < 2:
        # Consistency compares evaluators: with one there is no pair, so the row stays with its numbers empty (nan).
        nan = math.nan
        return ConditionSummary(
            name=name,
            variant=variant,
            metric=metric,
            mean=nan,
            std=nan,
            pairs=0,
            ci_low=nan,
            ci_high=nan,
            coverage=nan,
            consistent_correct=nan,
            consistent_wrong=nan,
            inconsistent=nan,
            evaluators=len(condition),
            problems=problems,
        )
    judge = metrics.paper_consistency if metric == "paper" else metrics.strict_consistency
    result = judge(condition)
    strict = result if metric == "strict" else metrics.strict_consistency(condition)
    ci = metrics.consistency_ci(condition, metric=metric, seed=seed)
    return ConditionSummary(
        name=name,
        variant=variant,
        metric=metric,
        mean=result.mean,
        std=result.std,
        pairs=result.n_pairs,
        ci_low=ci.low,
        ci_high=ci.high,
        coverage=result.coverage,
        consistent_correct=strict.consistent_correct,
        consistent_wrong=strict.consistent_wrong,
        inconsistent=strict.inconsistent,
        breakdown_coverage=strict.coverage,
        evaluators=len(condition),
        problems=problems,
    )


def transfer_matrices(data: GatheredData) -> dict[str, dict[str, Any]]:
    """Per variant, the source x evaluator accuracy grid of the transfer condition (sources and evaluators in the
    order their trials come; None where a cell has no data)."""
    matrices: dict[str, dict[str, Any]] = {}
    for variant in sorted({v for _, v in data}):
        transfer = {
            key.source: condition
            for (key, v), condition in data.items()
            if v == variant and key.condition == Condition.TRANSFER and key.source
        }
        if transfer:
            grid = metrics.transfer_matrix(transfer, metric="accuracy")
            matrices[variant] = {
                "metric": "accuracy",
                "sources": list(grid.sources),
                "targets": list(grid.targets),
                "values": [[None if math.isnan(v) else float(v) for v in row] for row in grid.values],
            }
    return matrices


def cost_summary(
    results: ResultsDB,
    study: str,
    trial_tokens: dict[str, dict[str, list[int]]],
    cot_counts: list[tuple[str, str, str, int, int, int, int, int, int]],
    cot_live: Sequence[tuple[str, str, str, int, int]] = (),
) -> dict[str, dict[str, Any]]:
    """Tokens per model and condition (CoT generation counted apart), in USD where the study gave a price.
    `trial_tokens`: evaluator -> "label/variant" -> [prompt, completion, reasoning, live prompt, live completion]
    tokens of its trials; `cot_counts`: `ResultsDB.explanation_counts`; `cot_live`: `ResultsDB.live_token_counts`.

    Tokens a batch model sent live (its job gave the request no result) cost the live price, not the study's batch
    price: a row with any counts them apart (`live_prompt_tokens`, `live_completion_tokens`) and prices them at the
    live price, and the model's `live` says how many there were, at what price and for how much (None when none
    were)."""
    models = results.study_config(study).get("models") or {}
    tokens: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0, 0]))
    for evaluator, per_label in trial_tokens.items():
        for label, counted in per_label.items():
            tokens[evaluator][label] = [*counted, 0, 0][:5]
    for source, kind, variant, _, _, _, prompt, completion, reasoning in cot_counts:
        counts = tokens[source][f"CoTs ({kind}, {variant})"]
        counts[0] += prompt or 0
        counts[1] += completion or 0
        counts[2] += reasoning or 0
    for source, kind, variant, live_prompt, live_completion in cot_live:
        counts = tokens[source][f"CoTs ({kind}, {variant})"]
        counts[3] += live_prompt or 0
        counts[4] += live_completion or 0
    summary: dict[str, dict[str, Any]] = {}
    for model, per in sorted(tokens.items()):
        section = models.get(model)
        summary[model] = _model_costs(section if isinstance(section, dict) else {}, per)
    return summary


def _model_costs(section: dict[str, Any], per: dict[str, list[int]]) -> dict[str, Any]:
    """One model's rows and totals (see `cost_summary`); `section`: its [models] section as stored."""
    price = section.get("price")
    live_tokens = [sum(counts[3] for counts in per.values()), sum(counts[4] for counts in per.values())]
    live = _live_price(section, price) if price and any(live_tokens) else price
    rows = {}
    for label, (prompt, completion, reasoning, live_prompt, live_completion) in sorted(per.items()):
        usd = None
        if price and live:
            at_price = (prompt - live_prompt) * price["input"] + (completion - live_completion) * price["output"]
            usd = (at_price + live_prompt * live["input"] + live_completion * live["output"]) / 1e6
        row: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "reasoning_tokens": reasoning}
        if live_prompt or live_completion:
            row |= {"live_prompt_tokens": live_prompt, "live_completion_tokens": live_completion}
        rows[label] = row | {"usd": usd}
    total_usd = sum(r["usd"] or 0.0 for r in rows.values()) if price else None
    sent_live = None
    if any(live_tokens):
        live_usd = (live_tokens[0] * live["input"] + live_tokens[1] * live["output"]) / 1e6 if live else None
        sent_live = {
            "prompt_tokens": live_tokens[0],
            "completion_tokens": live_tokens[1],
            "price": live,
            "usd": live_usd,
        }
    return {
        "rows": rows,
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows.values()),
        "completion_tokens": sum(r["completion_tokens"] for r in rows.values()),
        "reasoning_tokens": sum(r["reasoning_tokens"] for r in rows.values()),
        "usd": total_usd,
        "live": sent_live,
    }


def _live_price(section: dict[str, Any], price: dict[str, float]) -> dict[str, float]:
    """The live price of a model whose stored `price` is its batch price when it ran in batch mode
    (`cotbridge.providers.prices.live_price`: the bridge charged its live requests the same), else `price`."""
    if not section.get("batch") or not section.get("model"):
        return price
    # Imported here: only a batch study with requests sent live needs the providers' price data.
    from cotbridge.options import Price
    from cotbridge.providers.prices import live_price
    from cotbridge.providers.registry import provider_spec

    spec, model_id = provider_spec(section["model"])
    return live_price(spec, model_id, Price.model_validate(price)).model_dump()


def live_line(name: str, spent: dict[str, Any]) -> str | None:
    """How a report says that some of a batch model's requests were sent live and priced at the live price, e.g.
    `o3: 1,200 prompt and 3,400 completion tokens were sent live (...) ...`; None when none were."""
    sent = spent.get("live")
    if not sent:
        return None
    tokens = f"{sent['prompt_tokens']:,} prompt and {sent['completion_tokens']:,} completion tokens"
    line = f"{name}: {tokens} were sent live, as its batch jobs gave their requests no result"
    if sent["price"] is None:
        return line
    price = sent["price"]
    return (
        f"{line}; they are counted at the live price ({price['input']:g} / {price['output']:g} USD per M in/out): "
        f"{sent['usd']:.4f} of its {spent['usd']:.4f} USD"
    )


# What cut an ensemble CoT off, as reports name it: the EnsembleOptions cap to raise, or the step with nothing usable.
_CUT_BY = {
    EnsembleEnd.MAX_STEPS: "max_steps",
    EnsembleEnd.MAX_COT_TOKENS: "max_cot_tokens",
    EnsembleEnd.NO_USABLE_CANDIDATE: "no usable candidate",
}


def ensemble_summary(cots: list[ExplanationRow]) -> dict[str, dict[str, Any]]:
    """Per ensemble: runs, steps (median, max), share of chosen sentences per generator, guard fallbacks, how runs
    ended, and how many CoTs were truncated (`truncated`; `truncated_by` what cut them off; `truncation` the line
    reports show, None when none was). Reads the stored traces (`EnsembleTrace.as_dict()` as JSON: `ended` is the
    `EnsembleEnd` value, each step's `note` a `StepChoice` value)."""
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in cots:
        if row.kind == "ensemble" and row.variant == "full" and row.trace:
            traces[row.source].append(json.loads(row.trace))
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in sorted(traces.items()):
        steps = sorted(len(run["steps"]) for run in runs)
        chosen: dict[str, int] = defaultdict(int)
        ended: dict[str, int] = defaultdict(int)
        fallbacks = 0
        for run in runs:
            fallbacks += sum(step["note"] == StepChoice.FALLBACK for step in run["steps"])
            for generator, count in chosen_by_generator(run).items():
                chosen[generator] += count
            ended[run["ended"]] += 1
        total = sum(chosen.values()) or 1
        truncated = count_truncated(runs)
        cut_by = {label: ended[end] for end, label in _CUT_BY.items() if ended.get(end)}
        summary[name] = {
            "runs": len(runs),
            "steps_median": float(statistics.median(steps)),
            "steps_max": steps[-1],
            "chosen_share": {g: n / total for g, n in sorted(chosen.items())},
            "guard_fallbacks": fallbacks,
            "ended": dict(sorted(ended.items())),
            "truncated": truncated,
            "truncated_by": cut_by,
            "truncation": truncation_line(name, truncated, len(runs), cut_by) if truncated else None,
        }
    return summary


def _per_source(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted((label, n) for label, n in counts.items() if n))


def truncated_cots(cot_counts: list[tuple[str, str, str, int, int, int, int, int, int]]) -> dict[str, int]:
    """Generated CoTs cut off at cot_max_tokens, per "source/kind" (greedy or sampled; an ensemble's own caps are
    in its summary), from `ResultsDB.explanation_counts`. Their trials still run, on the CoT as far as it got, so a
    reader must know how many there are."""
    counts: Counter[str] = Counter()
    for source, kind, variant, _, truncated, *_ in cot_counts:
        if variant == "full" and kind != "ensemble":
            counts[f"{source}/{kind}"] += truncated or 0
    return _per_source(counts)


def redacted_cots(cot_counts: list[tuple[str, str, str, int, int, int, int, int, int]]) -> dict[str, int]:
    """Generated CoTs whose vendor withheld part of the reasoning (encrypted), per "source/kind", from
    `ResultsDB.explanation_counts`: their trials run on the readable part, so a reader must know how many have
    gaps."""
    counts: Counter[str] = Counter()
    for source, kind, _, _, _, redacted, *_ in cot_counts:
        counts[f"{source}/{kind}"] += redacted or 0
    return _per_source(counts)


def truncation_line(name: str, truncated: int, runs: int, cut_by: dict[str, int]) -> str:
    """How an ensemble's truncated CoTs are reported, e.g. `ensemble E: 3 of 20 CoTs truncated (max_steps 2,
    max_cot_tokens 1)`."""
    causes = ", ".join(f"{label} {n}" for label, n in cut_by.items())
    return f"ensemble {name}: {truncated} of {runs} CoTs truncated ({causes})"
