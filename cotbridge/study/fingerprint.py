"""Fingerprints of trials: a digest of everything that decides a trial's answer, so that a study edited between
runs redoes the trials the edit changed instead of reporting stale answers under the new settings.

What counts: the evaluator's model and the options that change its output (model string, thinking format,
injection, extra body, capability overrides), the CoT's origin (the source model, or the ensemble and its models),
the decoding settings, the answer-removal filter for the without_answer variant, and the problem itself. What does
not: prices, rate limits, concurrency, timeouts and server addresses, which change how a trial runs, not its
answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cotbridge.cache.keys import canonical_json
from cotbridge.records import Condition, Problem, Variant
from cotbridge.study.config import StudyConfig

# ModelOptions fields that change how a request runs but not what the model answers.
# How and where a model is reached, not what it answers: a batch job returns what a live call would.
_RUN_ONLY = {
    *("base_url", "api_key_env", "max_concurrency", "timeout_s", "rpm", "tpm", "price", "generator", "evaluator"),
    *("batch", "batch_poll_s"),
}


def _model(config: StudyConfig, name: str) -> dict[str, Any]:
    dumped = config.models[name].model_dump(mode="json", exclude=_RUN_ONLY)
    if not dumped.get("capabilities"):
        dumped.pop("capabilities", None)  # no override: fingerprints stay those of studies written before the field
    return dumped


def _origin(config: StudyConfig, condition: Condition, source: str, sample_index: int) -> dict[str, Any]:
    if condition == Condition.EMPTY:
        return {}
    if condition == Condition.ENSEMBLE:
        section = config.ensembles[source]
        members = sorted({*section.generators, *section.evaluators})
        return {"ensemble": section.model_dump(mode="json"), "models": {m: _model(config, m) for m in members}}
    origin: dict[str, Any] = {"model": _model(config, source), "sample": sample_index}
    if condition == Condition.SAMPLED:
        origin["samples"] = config.study.samples
    return origin


def trial_fingerprint(
    config: StudyConfig,
    evaluator: str,
    variant: Variant,
    condition: Condition,
    source: str,
    sample_index: int,
    problem: Problem,
) -> str:
    """A short digest of what decides one trial (see the module's docstring)."""
    material = _material(config, evaluator, variant, condition, source, sample_index, _problem(problem))
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:16]


def _problem(problem: Problem) -> dict[str, Any]:
    return {"prompt": problem.prompt, "gold": str(problem.gold)}


def _material(
    config: StudyConfig,
    evaluator: str,
    variant: Variant,
    condition: Condition,
    source: str,
    sample_index: int,
    problem: object,
) -> dict[str, Any]:
    """What a trial's fingerprint is the digest of."""
    study = config.study
    return {
        "evaluator": _model(config, evaluator),
        "origin": _origin(config, condition, source, sample_index),
        "decoding": study.decoding.model_dump(mode="json"),
        "removal": study.filter_model if variant == Variant.WITHOUT_ANSWER else None,
        "retry_truncated": study.retry_truncated,
        "problem": problem,
    }


# Stands for the problem in the material's JSON, which is then cut around it (no config writes a NUL character).
_PROBLEM = "\x00problem\x00"


class TrialFingerprints:
    """`trial_fingerprint` for many trials of one study: the JSON of everything but the problem is made once per
    evaluator, variant, condition, source and sample, and the problem's JSON is put in its place (the same bytes,
    so the same digests)."""

    def __init__(self, config: StudyConfig) -> None:
        self.config = config
        self._around: dict[tuple[str, Variant, Condition, str, int], tuple[bytes, bytes]] = {}

    def of(
        self,
        evaluator: str,
        variant: Variant,
        condition: Condition,
        source: str,
        sample_index: int,
        problem: Problem,
    ) -> str:
        """The trial's fingerprint, equal to `trial_fingerprint(config, ...)`."""
        key = (evaluator, variant, condition, source, sample_index)
        around = self._around.get(key)
        if around is None:
            around = self._around[key] = self._cut(*key)
        head, tail = around
        problem_json = canonical_json(_problem(problem)).encode()
        return hashlib.sha256(head + problem_json + tail).hexdigest()[:16]

    def _cut(
        self, evaluator: str, variant: Variant, condition: Condition, source: str, sample_index: int
    ) -> tuple[bytes, bytes]:
        material = _material(self.config, evaluator, variant, condition, source, sample_index, _PROBLEM)
        head, found, tail = canonical_json(material).partition(canonical_json(_PROBLEM))
        assert found and _PROBLEM not in tail, "the problem's placeholder appears once"
        return head.encode(), tail.encode()
