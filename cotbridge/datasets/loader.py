"""`load_dataset(spec)`: one string names a problem set; this parses it and calls the right loader."""

from __future__ import annotations

from cotbridge.datasets.builtin import load_builtin
from cotbridge.datasets.instruction_induction import load_instruction_induction
from cotbridge.datasets.jsonl import load_jsonl
from cotbridge.datasets.medcalc import load_medcalc
from cotbridge.datasets.sampling import take_sample
from cotbridge.errors import ConfigError
from cotbridge.records import Problem

SPEC_FORMS = (
    "medcalc:PATH (the MedCalc-Bench test_data.csv)",
    "instruction-induction:DIR[#task1,task2] (the folder with annotations/ and induction_input/)",
    "jsonl:PATH (one object a line: id, question, answer[, answer_type, tolerance])",
    "builtin:arithmetic",
    "builtin:one-step (one-step word problems the embedded models can answer: the demo's)",
)


def load_dataset(spec: str, sample: int | None = None, seed: int | None = None) -> list[Problem]:
    """The problems a spec names, all of them or a reproducible sample.

    Specs: `medcalc:PATH`, `instruction-induction:DIR` (optionally `DIR#task1,task2`), `jsonl:PATH`,
    `builtin:arithmetic`, `builtin:one-step`. With `sample=n` the problems are the n that pandas'
    `df.sample(n=n, random_state=seed)` would pick from the full list, in that order (seed defaults to 42, the
    paper's, and is unused without `sample`); `medcalc:...` with `sample=100, seed=42` is the paper's evaluation
    subset. Raises `ConfigError` with the fix on bad input.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"dataset spec {spec!r} has no kind; write one of: {'; '.join(SPEC_FORMS)}")
    kind, _, rest = spec.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if not rest:
        raise ConfigError(
            f"dataset spec {spec!r} names no file or set after {kind + ':'!r}; write one of: {'; '.join(SPEC_FORMS)}"
        )
    if kind == "medcalc":
        problems = load_medcalc(rest)
    elif kind == "instruction-induction":
        folder, _, task_list = rest.rpartition("#") if "#" in rest else (rest, "", "")
        tasks = [t.strip() for t in task_list.split(",") if t.strip()] or None
        problems = load_instruction_induction(folder, tasks)
    elif kind == "jsonl":
        problems = load_jsonl(rest)
    elif kind == "builtin":
        problems = load_builtin(rest)
    else:
        raise ConfigError(f"dataset spec {spec!r}: unknown kind {kind!r}; write one of: {'; '.join(SPEC_FORMS)}")
    return take_sample(problems, sample, seed, source=spec)
