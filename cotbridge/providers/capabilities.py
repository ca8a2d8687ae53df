"""What a model can do (`Capabilities`, with the one-line texts the study plan and `models check` show of it), and
the bundled table it is read from (`capabilities.toml`): the file's schema, its loader (once per process) and the
patch rule that lays a family, a reasoning default or an override over a provider's defaults. Which entry applies
to a model is decided in `capability_resolution.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from cotbridge.errors import ConfigError

DATA_FILE = "capabilities.toml"

Visibility = Literal["raw", "summary", "omitted", "none"]
ThinkingControl = Literal["none", "budget", "adaptive", "effort", "level"]
CapabilitySource = Literal["bundled data", "override", "litellm map", "guess"]

_FIELDS = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True, config=_FIELDS)
class Thinking:
    """How thinking is asked for. control: "none" (no request parameter; the model or its template decides),
    "budget" (a token budget: Anthropic's budget_tokens, Gemini 2.5's thinkingBudget), "adaptive" (Anthropic's
    adaptive thinking steered by an effort), "effort" (effort levels: OpenAI, DeepSeek, OpenRouter), "level"
    (Gemini 3's thinkingLevel). efforts: the accepted effort or level values; display: the values of Anthropic's
    `thinking.display` the model accepts. asked_effort: the effort cotbridge sends when a request names none, set
    where the model's own default would not reason (`default_effort` "none": OpenAI's GPT-5.1 and later)."""

    control: ThinkingControl = "none"
    on_by_default: StrictBool = False
    can_disable: StrictBool = True
    efforts: tuple[StrictStr, ...] = ()
    default_effort: StrictStr | None = None
    min_budget: StrictInt | None = None
    max_budget: StrictInt | None = None
    display: tuple[StrictStr, ...] = ()
    asked_effort: StrictStr | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Thinking:
        if self.default_effort is not None and self.efforts and self.default_effort not in self.efforts:
            raise ValueError(f"default_effort {self.default_effort!r} is not one of efforts {list(self.efforts)}")
        if self.asked_effort is not None and (self.asked_effort == "none" or self.asked_effort not in self.efforts):
            allowed = [effort for effort in self.efforts if effort != "none"]
            raise ValueError(f"asked_effort {self.asked_effort!r} is not one of the efforts that reason, {allowed}")
        low, high = self.min_budget, self.max_budget
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_budget {self.min_budget} is above max_budget {self.max_budget}")
        return self


@dataclass(frozen=True, slots=True, config=_FIELDS)
class Capabilities:
    """What a model's server can do, as far as cotbridge relies on it, and where that knowledge came from.

    prompt_scoring: how `score()` works: "prompt-logprobs" (echo: the choice's log-probs cover the prompt, with
    text offsets), "prompt-field" (echo: the prompt's log-probs come in a top-level `prompt[]`, as Together's do),
    "forced-grammar" (llama.cpp), or None. visibility: what comes back of the reasoning by default: "raw" (the CoT
    itself), "summary", "omitted" (the model thinks, the text is withheld) or "none"; only a raw CoT can be
    transferred.
    max_tokens_includes_cot: the vendor's output limit bounds the reasoning too. rejected_params: request fields
    the vendor answers with an error; ignored_params: fields it accepts without effect. seed / stop: the vendor
    takes them. source, family, reference, overridden, based_on: provenance (see `capability_resolution`).
    """

    completions: StrictBool = True
    logprobs: StrictBool = True
    prompt_scoring: Literal["prompt-logprobs", "prompt-field", "forced-grammar"] | None = None
    token_id_prompts: StrictBool = False
    tokenize: StrictBool = False
    chat_template: StrictBool = False
    reasoning_field: StrictBool = False
    n_samples: StrictBool = True
    # Whether a final assistant message is continued (a prefill); hosted reasoning APIs reject or ignore one.
    assistant_prefill: StrictBool = True
    visibility: Visibility = "raw"
    thinking: Thinking = Thinking()
    max_tokens_includes_cot: StrictBool = True
    rejected_params: tuple[StrictStr, ...] = ()
    ignored_params: tuple[StrictStr, ...] = ()
    seed: StrictBool = True
    stop: StrictBool = True
    source: CapabilitySource | None = None  # None: made in code, not resolved
    family: StrictStr | None = None
    reference: StrictStr | None = None
    overridden: tuple[StrictStr, ...] = ()
    based_on: CapabilitySource | None = None  # under an override: what it was laid over

    @property
    def reasoning_visibility(self) -> str:
        """The older name of `visibility`, still read by the vendor adapters."""
        return self.visibility

    @property
    def reasoning_model(self) -> bool:
        """Whether the model reasons: it shows some form of reasoning or is asked to think by a parameter."""
        return self.visibility != "none" or self.thinking.control != "none"


def thinking_text(capabilities: Capabilities) -> str:
    """How a model's thinking is asked for, in one cell: the control and, where there is one, its default."""
    thinking = capabilities.thinking
    if thinking.control == "none":
        return "always on" if thinking.on_by_default and capabilities.reasoning_model else "-"
    default = "on" if thinking.on_by_default else "off"
    effort = f", default {thinking.default_effort}" if thinking.default_effort else ""
    if thinking.asked_effort:
        effort += f"; cotbridge asks {thinking.asked_effort}"
    return f"{thinking.control} ({default} by default{effort})"


def greedy_text(capabilities: Capabilities) -> str:
    """Whether a temperature-0 request is greedy, in one cell: a vendor that ignores temperature, or refuses it (it is
    then left out), samples at its own, so the model's "greedy" CoTs and answers are samples."""
    if "temperature" in capabilities.ignored_params:
        return "no: sampled (temperature ignored)"
    if "temperature" in capabilities.rejected_params:
        return "no: sampled (temperature refused, left out)"
    return "yes"


def provenance_text(capabilities: Capabilities) -> str:
    """Where a model's capabilities came from, in one cell; a guess says so and how to correct it."""
    source, family = capabilities.source, capabilities.family
    if source == "override":
        beneath = "a guess (unknown model)" if capabilities.based_on == "guess" else capabilities.based_on
        return f"override of {', '.join(capabilities.overridden)} over {beneath}"
    if source == "guess":
        return "guessed (unknown model): conservative defaults; correct them with capabilities = { ... }"
    if source is None:
        return "-"
    return f"{source}: {family}" if family else source


PROVENANCE = frozenset({"source", "family", "reference", "overridden", "based_on"})
_ADAPTER: TypeAdapter[Capabilities] = TypeAdapter(Capabilities)
_CAPABILITY_FIELDS = tuple(f.name for f in dataclasses.fields(Capabilities) if f.name not in PROVENANCE)
_THINKING_FIELDS = tuple(f.name for f in dataclasses.fields(Thinking))


def check_patch(patch: Mapping[str, Any]) -> None:
    """Raises ValueError naming the first field a patch (a family's, or an override) must not set or misspells."""
    for key, value in patch.items():
        if key in PROVENANCE:
            raise ValueError(f"{key!r} says where capabilities came from; cotbridge sets it, a patch cannot")
        if key not in _CAPABILITY_FIELDS:
            raise ValueError(f"unknown capability {key!r}; known: {', '.join(_CAPABILITY_FIELDS)}")
        if key == "thinking":
            if not isinstance(value, Mapping):
                raise ValueError("'thinking' must be a table of thinking fields, e.g. { control = \"adaptive\" }")
            for inner in value:
                if inner not in _THINKING_FIELDS:
                    raise ValueError(f"unknown capability 'thinking.{inner}'; known: {', '.join(_THINKING_FIELDS)}")


def patch_names(patch: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields a patch sets, `thinking.*` spelled out: what the plan shows as overridden."""
    names: list[str] = []
    for key, value in patch.items():
        names += [f"thinking.{inner}" for inner in value] if key == "thinking" else [key]
    return tuple(names)


def patched(base: Capabilities, patch: Mapping[str, Any], **provenance: Any) -> Capabilities:
    """`base` with the patch's fields (thinking merged field by field) and the given provenance; raises ValueError
    on an unknown field and pydantic's ValidationError on a wrong value."""
    check_patch(patch)
    data = _ADAPTER.dump_python(base)
    for key, value in patch.items():
        data[key] = {**data["thinking"], **value} if key == "thinking" else value
    data.update(provenance)
    return _ADAPTER.validate_python(data)


class _Entry(BaseModel):
    """Entries of the data file: unknown keys are mistakes, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FamilyEntry(_Entry):
    """[[providers.NAME.families]]: models that share one vendor contract. Membership is data: exact `ids` and
    id `prefixes` (lower case; the longest matching prefix of all families wins). Families are reasoning models:
    `capabilities` patches the provider's defaults after its `reasoning` patch."""

    name: str = Field(min_length=1)
    source: str = Field(min_length=1, description="the vendor reference page this family follows")
    note: str = ""
    ids: tuple[str, ...] = Field(default=(), strict=False)
    prefixes: tuple[str, ...] = Field(default=(), strict=False)
    capabilities: dict[str, Any] = Field(default_factory=dict)


class VendorEntry(_Entry):
    """A vendor prefix of a routing provider's model ids (OpenRouter's `anthropic/...`): the cotbridge provider whose
    families describe it, and the text replacements that turn the router's model name into the vendor's id."""

    provider: str
    replace: dict[str, str] = Field(default_factory=dict)


class BatchEntry(_Entry):
    """[providers.NAME.batch]: the provider has a batch API (`batch = true` models use it). `price_factor` is the
    batch price as a share of the live price, used where litellm's map has no batch price of the model."""

    source: str = Field(min_length=1, description="the vendor's batch API reference")
    pricing: str = Field(min_length=1, description="the vendor page that states the batch discount")
    price_factor: float = Field(gt=0, le=1)


class ProviderEntry(_Entry):
    """[providers.NAME]: `defaults` for every model of the provider; `unknown_models` says whether a model outside
    every family that litellm's map does not know either keeps them ("defaults": the server decides, not the
    model) or is a guess ("guess"); `reasoning` patches the defaults for a model litellm's map marks as
    reasoning; `vendors` lets a router's model take its visibility from the vendor's families."""

    source: str = Field(min_length=1)
    note: str = ""
    unknown_models: Literal["defaults", "guess"]
    defaults: dict[str, Any] = Field(default_factory=dict)
    reasoning: dict[str, Any] = Field(default_factory=dict)
    vendors: dict[str, VendorEntry] = Field(default_factory=dict)
    families: tuple[FamilyEntry, ...] = Field(default=(), strict=False)
    batch: BatchEntry | None = None


class CapabilityFile(_Entry):
    """The whole data file."""

    schema_version: Literal[1]
    providers: dict[str, ProviderEntry]


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    """A family with its capabilities laid over its provider's defaults."""

    name: str
    capabilities: Capabilities
    ids: frozenset[str]
    prefixes: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderCapabilities:
    """One provider's entry, every patch applied and validated."""

    name: str
    entry: ProviderEntry
    defaults: Capabilities
    reasoning: Capabilities
    families: tuple[Family, ...]

    def family_for(self, model_id: str) -> Family | None:
        """The family naming the model exactly, else the one with the longest prefix of it, else None."""
        lowered = model_id.lower()
        best: tuple[int, Family] | None = None
        for family in self.families:
            if lowered in family.ids:
                return family
            for prefix in family.prefixes:
                if lowered.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), family)
        return best[1] if best is not None else None


def _provider_table(name: str, entry: ProviderEntry) -> ProviderCapabilities:
    where = f"{DATA_FILE} [providers.{name}]"
    try:
        defaults = patched(Capabilities(), entry.defaults, source="bundled data", reference=entry.source)
        reasoning = patched(defaults, entry.reasoning)
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    families = []
    seen: dict[str, str] = {}
    for family in entry.families:
        for member in (*family.ids, *family.prefixes):
            if member != member.lower() or member in seen:
                raise ConfigError(f"{where}: {member!r} of {family.name!r} is not lower case, or is also in {seen}")
            seen[member] = family.name
        try:
            caps = patched(reasoning, family.capabilities, family=family.name, reference=family.source)
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"{where} family {family.name!r}: {exc}") from None
        families.append(Family(family.name, caps, frozenset(family.ids), family.prefixes))
    return ProviderCapabilities(name, entry, defaults, reasoning, tuple(families))


@functools.cache
def capability_table() -> dict[str, ProviderCapabilities]:
    """The bundled data file, validated, by provider name (read once per process)."""
    text = resources.files("cotbridge.providers").joinpath(DATA_FILE).read_text(encoding="utf-8")
    try:
        data = CapabilityFile.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"the bundled {DATA_FILE} is broken: {exc}") from None
    return {name: _provider_table(name, entry) for name, entry in data.providers.items()}


def provider_defaults(provider: str) -> Capabilities:
    """A provider's defaults (what its protocol offers every model), e.g. for a provider object made directly."""
    table = capability_table()
    if provider not in table:
        raise ConfigError(f"{DATA_FILE} has no entry for provider {provider!r}")
    return table[provider].defaults


def batch_entry(provider: str) -> BatchEntry | None:
    """The provider's batch API entry, or None when it has no batch API (or no entry)."""
    table = capability_table()
    return table[provider].entry.batch if provider in table else None


def batch_providers() -> tuple[str, ...]:
    """The providers with a batch API, in the data file's order."""
    return tuple(name for name, table in capability_table().items() if table.entry.batch is not None)
