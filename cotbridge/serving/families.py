"""The model families `cotbridge serve` knows (families.toml): which vLLM flags a model needs because of its family."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from pydantic import Field, ValidationError

from cotbridge.errors import ConfigError
from cotbridge.options import Strict, validation_message


class ServeFamily(Strict):
    """One [[families]] entry of families.toml."""

    name: str = Field(min_length=1)
    source: str = Field(pattern=r"^https://", description="the vLLM page the entry follows")
    note: str | None = None
    prefixes: list[str] = Field(min_length=1, description="model-id prefixes, lower case")
    reasoning_parser: str | None = Field(default=None, min_length=1, description="vLLM's --reasoning-parser name")


class FamilyFile(Strict):
    families: list[ServeFamily] = Field(min_length=1)


@cache
def serve_families() -> tuple[ServeFamily, ...]:
    """Every family of the bundled data file, validated once per process."""
    text = (resources.files("cotbridge.serving") / "families.toml").read_text(encoding="utf-8")
    try:
        data = FamilyFile.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        detail = validation_message(exc, "cotbridge/serving/families.toml") if isinstance(exc, ValidationError) else exc
        raise ConfigError(f"cotbridge/serving/families.toml is broken: {detail}") from None
    return tuple(data.families)


def family_of(model_id: str) -> ServeFamily | None:
    """The family whose longest prefix starts the model id (case-insensitive), or None."""
    lowered = model_id.lower()
    best: tuple[int, ServeFamily] | None = None
    for family in serve_families():
        for prefix in family.prefixes:
            if lowered.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), family)
    return None if best is None else best[1]
