"""A study's models on one bridge: made once per [models] entry, checked before the first request, priced, shown
as the run's plan, and how many of each one's jobs a phase runs at once."""

from __future__ import annotations

from cotbridge.client import Bridge, Model
from cotbridge.cot.transfer import resolve_mode
from cotbridge.errors import ConfigError
from cotbridge.providers.batch import MAX_REQUESTS as BATCH_JOB_REQUESTS
from cotbridge.providers.capabilities import greedy_text, provenance_text, thinking_text
from cotbridge.records import Condition
from cotbridge.study.config import StudyConfig
from cotbridge.study.phases import JOBS_PER_SLOT

# Why a CoT that is not raw cannot be a transfer source, by visibility.
_NOT_RAW = {
    "summary": "returns only a summary of its reasoning",
    "omitted": "thinks but returns none of its reasoning (the vendor omits it)",
    "none": "returns no reasoning",
}


class StudyModels:
    """The Model of each [models] entry, by name (two entries with the same model string and options share one)."""

    def __init__(self, config: StudyConfig, bridge: Bridge) -> None:
        self.config = config
        self.bridge = bridge
        self._models: dict[str, Model] = {}

    def get(self, name: str) -> Model:
        """The model of a [models] entry. Two entries with the same model string and options share one Model."""
        if name not in self._models:
            section = self.config.models[name]
            try:
                self._models[name] = self.bridge.model(section.model, options=section.options())
            except ConfigError as exc:
                raise ConfigError(f"[models.{name}]: {exc}") from None
        return self._models[name]

    def check(self) -> None:
        """Everything that can be known wrong before the first request: models, keys, injection modes."""
        for name, section in self.config.models.items():
            model = self.get(name)
            if section.generator and Condition.TRANSFER in self.config.study.conditions:
                visibility = model.capabilities.visibility
                if visibility != "raw":
                    raise ConfigError(
                        f"[models.{name}]: {model.name} {_NOT_RAW[visibility]}, so it has no CoT to transfer; set "
                        "generator = false (or, if it does return its raw reasoning, capabilities = "
                        '{ visibility = "raw" })'
                    )
                if model.thinking_format.name == "none":
                    raise ConfigError(
                        f"[models.{name}]: {model.name} has no reasoning channel (thinking format 'none'), so it "
                        "writes no CoT to transfer; set thinking_format (e.g. 'think-tags') or generator = false"
                    )
            if section.injection == "prefill":
                try:
                    resolve_mode(model, "prefill")
                except ConfigError as exc:
                    raise ConfigError(f"[models.{name}]: {exc}") from None

    def fill_default_prices(self) -> None:
        """Models without a price in the study file run at the price their Model has (the bridge gives hosted
        models the bundled one); written into the study's config, so its report prices them too."""
        for name, section in self.config.models.items():
            price = self.get(name).price
            if section.price is None and price is not None:
                section.price = price

    def plan(self) -> list[dict[str, str]]:
        """How every model will run: its roles, thinking format, what it shows of its CoT, how its thinking is
        asked for, whether its "greedy" requests are greedy, where its capabilities came from (a guessed model
        says so), and the injection mode it gets a foreign CoT in. Call after `check()`."""
        transfers = Condition.TRANSFER in self.config.study.conditions
        rows = []
        for name, section in self.config.models.items():
            model = self.get(name)
            roles = [("generator", section.generator and transfers), ("evaluator", section.evaluator)]
            rows.append(
                {
                    "name": name,
                    "model": model.name,
                    "roles": ", ".join(role for role, on in roles if on) or "-",
                    "thinking format": model.thinking_format.name,
                    "CoT visible": model.capabilities.visibility,
                    "thinking": thinking_text(model.capabilities),
                    "greedy": greedy_text(model.capabilities),
                    "capabilities from": provenance_text(model.capabilities),
                    "injection": resolve_mode(model, section.injection) if section.evaluator else "-",
                    "USD per M in/out": f"{section.price.input:g} / {section.price.output:g}" if section.price else "-",
                }
            )
        return rows

    def bound(self, name: str) -> int:
        """How many of a model's jobs a phase runs at once: a few per request its endpoint lets in flight (per
        replica), so that the endpoint never waits for the runner."""
        section = self.config.models[name]
        if section.batch:  # its requests wait together in a vendor's job: the bound is a job's size
            return BATCH_JOB_REQUESTS
        replicas = len(section.base_url) if isinstance(section.base_url, list) else 1
        return JOBS_PER_SLOT * replicas * (section.max_concurrency or self.bridge.max_concurrency)
