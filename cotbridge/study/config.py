"""The study file: TOML -> a validated `StudyConfig`. Errors name the file, the field and what is wrong.

Each section is the shared option model of its concept (`cotbridge.options`) plus what only a study needs: a
`[models.NAME]` is `ModelOptions` with the model string and its roles, an `[ensembles.NAME]` is `EnsembleOptions`
with its generators and evaluators, and `[study.retry]` is a `RetryPolicy` with the request timeout.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, computed_field, field_validator, model_validator

from cotbridge.errors import ConfigError
from cotbridge.options import (
    DEFAULT_TIMEOUT_S,
    Decoding,
    EnsembleOptions,
    ModelOptions,
    RetryPolicy,
    Strict,
    validation_message,
)
from cotbridge.providers.capabilities import batch_providers, check_patch
from cotbridge.records import Condition, Variant
from cotbridge.study.files import read_user_text
from cotbridge.study.serve_section import ServeSection

# Reports fit an 80-column terminal when the names in their rows and columns are this short.
MAX_ALIAS_LENGTH = 16
_SHORT_NAME = 12


def default_alias(name: str, taken: set[str]) -> str:
    """A short alias for a [models] NAME that is not in `taken`: NAME itself when it has at most 12 characters,
    else its last part after "/" or ":" cut to 12 characters; a number is added when that is taken."""
    short = name if len(name) <= _SHORT_NAME else re.split(r"[/:]", name.rstrip("/:"))[-1][:_SHORT_NAME] or name[:12]
    alias, n = short, 2
    while alias in taken:
        alias, n = f"{short[: _SHORT_NAME - len(str(n))]}{n}", n + 1
    return alias


def model_aliases(names: list[str], given: dict[str, str | None]) -> dict[str, str]:
    """Every model's alias: the one given, else `default_alias`. ValueError naming the models when two share one."""
    holders: dict[str, list[str]] = {}
    for name in names:
        if given.get(name):
            holders.setdefault(str(given[name]), []).append(name)
    shared = {alias: models for alias, models in holders.items() if len(models) > 1}
    if shared:
        clashes = "; ".join(
            f"{alias!r} by {', '.join(f'[models.{m}]' for m in models)}" for alias, models in shared.items()
        )
        raise ValueError(f"aliases must be unique: {clashes}; give each model its own alias")
    aliases = {name: str(given[name]) for name in names if given.get(name)}
    taken = set(aliases.values())
    for name in names:
        if name not in aliases:
            aliases[name] = default_alias(name, taken | set(names) - {name})
            taken.add(aliases[name])
    return {name: aliases[name] for name in names}


class ModelSection(ModelOptions):
    """[models.NAME]: one model of the study; NAME is its identity in the results."""

    model: str = Field(description="provider/model-id, e.g. vllm/Qwen/QwQ-32B or local/smollm2-135m")
    generator: bool = Field(default=True, description="writes CoTs for the transfer condition")
    evaluator: bool = Field(default=True, description="answers under every condition")
    # Display only: left out of dumps like `serve`, so fingerprints and options do not change with it; the study's
    # `aliases` (every model's, defaults filled in) are what the stored config keeps.
    alias: str | None = Field(
        default=None,
        exclude=True,
        min_length=1,
        max_length=MAX_ALIAS_LENGTH,
        description="a short name reports show instead of NAME (default: NAME when short, else a short form of it)",
    )
    # How `cotbridge serve` starts the model. Left out of dumps: it decides where a model runs, not what it answers
    # (fingerprints), its env may hold a token (the stored config), and it is no option of the model.
    serve: ServeSection | None = Field(default=None, exclude=True, description="[models.NAME.serve]: its vLLM server")

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_patch(value)  # a misspelt capability is named when the file is read, not when the model opens
        return value

    def options(self) -> ModelOptions:
        """The options to open the model with (everything but the study's own fields)."""
        return ModelOptions.model_validate(self.model_dump(exclude={"model", "generator", "evaluator"}))


class EnsembleSection(EnsembleOptions):
    """[ensembles.NAME]: a sentence-level ensemble CoT (condition D). Temperature and seed default to the
    study's sampled temperature and seed."""

    generators: list[str] = Field(min_length=1)
    evaluators: list[str] = Field(min_length=1)

    def options(self, decoding: Decoding) -> EnsembleOptions:
        """The ensemble's options, with the study's sampling settings where the section sets none."""
        given = self.model_dump(exclude={"generators", "evaluators"}, exclude_unset=True)
        return EnsembleOptions.model_validate(
            {"temperature": decoding.sampled_temperature, "seed": decoding.seed, **given}
        )


class RetrySection(RetryPolicy):
    """[study.retry]: how transient failures are retried, and the per-request timeout."""

    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, allow_inf_nan=False)

    def policy(self) -> RetryPolicy:
        return RetryPolicy.model_validate(self.model_dump(exclude={"timeout_s"}))


class StudySection(Strict):
    """[study]: what to run."""

    name: str = Field(min_length=1)
    dataset: str = Field(
        description="a dataset string: medcalc:PATH, instruction-induction:DIR, jsonl:PATH, builtin:NAME"
    )
    sample: int | None = Field(default=None, ge=1)
    seed: int | None = None
    conditions: list[Condition] = Field(min_length=1)
    answer_removal: Literal["none", "filter", "both"] = "none"
    filter_model: str | None = Field(default=None, description="a [models] name, or 'rule' for the model-free filter")
    samples: int = Field(default=1, ge=1, description="CoT samples per model for the 'sampled' condition")
    retry_truncated: int | None = Field(
        default=None, ge=2, description="ask a trial cut off at its token cap once more, with budgets this many times"
    )
    budget_usd: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="stop before priced models would spend more than this (finished work kept)",
    )
    decoding: Decoding = Decoding()
    retry: RetrySection = RetrySection()
    mode: Literal["live", "batch"] = Field(
        default="live",
        description="'batch': every openai/ and anthropic/ model goes through its vendor's batch API (batch = true)",
    )


class StudyConfig(Strict):
    """A whole study file."""

    study: StudySection
    models: dict[str, ModelSection] = Field(min_length=1)
    ensembles: dict[str, EnsembleSection] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> StudyConfig:
        names = set(self.models)
        removal = self.study.answer_removal
        if removal != "none":
            chosen = self.study.filter_model
            if chosen is None:
                raise ValueError(f"answer_removal = {removal!r} needs filter_model: one of {sorted(names)} or 'rule'")
            if chosen != "rule" and chosen not in names:
                raise ValueError(
                    f"filter_model {chosen!r} is not a [models] name; use one of {sorted(names)} or 'rule'"
                )
        if Condition.ENSEMBLE in self.study.conditions and not self.ensembles:
            raise ValueError("the 'ensemble' condition needs at least one [ensembles.NAME] section")
        for ens_name, ens in self.ensembles.items():
            for role in ("generators", "evaluators"):
                unknown = [m for m in getattr(ens, role) if m not in names]
                if unknown:
                    raise ValueError(f"[ensembles.{ens_name}] {role} {unknown} are not [models] names")
        if not any(m.evaluator for m in self.models.values()):
            raise ValueError("no model is an evaluator (evaluator = true)")
        model_aliases(list(self.models), {name: m.alias for name, m in self.models.items()})  # unique, or it says
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def aliases(self) -> dict[str, str]:
        """[models] NAME -> the short name reports show (stored with the study, so `report` needs no flag)."""
        return model_aliases(list(self.models), {name: m.alias for name, m in self.models.items()})

    @model_validator(mode="after")
    def _batch_mode(self) -> StudyConfig:
        """mode = "batch" sets batch = true on every model whose provider has a batch API; batch = true on any
        other is refused, naming the model."""
        offered = batch_providers()
        for name, section in self.models.items():
            provider = section.model.partition("/")[0]
            if self.study.mode == "batch" and provider in offered and "batch" not in section.model_fields_set:
                section.batch = True
            elif section.batch and provider not in offered:
                raise ValueError(
                    f"[models.{name}] batch = true, but {provider}/ has no batch API (providers with one: "
                    f"{', '.join(f'{p}/' for p in offered)}); remove batch from [models.{name}]"
                )
        return self

    @property
    def evaluators(self) -> list[str]:
        return [name for name, m in self.models.items() if m.evaluator]

    @property
    def generators(self) -> list[str]:
        return [name for name, m in self.models.items() if m.generator]

    @property
    def variants(self) -> list[Variant]:
        return {
            "none": [Variant.FULL],
            "filter": [Variant.WITHOUT_ANSWER],
            "both": [Variant.FULL, Variant.WITHOUT_ANSWER],
        }[self.study.answer_removal]


def parse_study(text: str, source: str = "<study>") -> StudyConfig:
    """A StudyConfig from TOML text; errors name the file, the field and what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, f"{source}: the study file")) from None


def load_study(path: str | Path) -> StudyConfig:
    """Reads and validates a study file."""
    return parse_study(read_user_text(path, "study file", "see examples/ for the format"), str(path))
