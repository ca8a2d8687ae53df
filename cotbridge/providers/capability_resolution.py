"""Which capabilities a model gets, and where they came from (`Capabilities.source`), in this order:

1. an explicit override (`Bridge.model(..., capabilities={...})`, a study's `[models.NAME] capabilities`), laid
   over whatever the next steps give: "override";
2. the model's family in the bundled data file (`capabilities.toml`): "bundled data";
3. for a router (OpenRouter), the family of the vendor named in the model id: "bundled data";
4. the provider's defaults where its server, not the model, decides (vLLM, llama.cpp, open-model hosts):
   "bundled data";
5. litellm's bundled map: a chat model (mode "chat", or "responses" for the Responses API) it marks
   `supports_reasoning` gets its provider's reasoning defaults, another chat model the provider's defaults:
   "litellm map";
6. anything else is a conservative guess (the provider's defaults, which assume no reasoning): "guess".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cotbridge.errors import ConfigError
from cotbridge.options import validation_message
from cotbridge.providers.capabilities import Capabilities, ProviderCapabilities, capability_table, patch_names, patched
from cotbridge.providers.litellm_map import CHAT_MODES, map_entries
from cotbridge.providers.registry import PROVIDERS, ProviderSpec


def resolve_capabilities(
    spec: ProviderSpec, model_id: str, overrides: Mapping[str, Any] | None = None, *, model: str | None = None
) -> Capabilities:
    """The capabilities of `model_id` on `spec`'s provider, an override laid over them; a misspelt or invalid
    override is a ConfigError naming the model (`model`, default provider/model-id) and the field."""
    resolved = _from_data(spec, model_id)
    if not overrides:
        return resolved
    where = f"{model or f'{spec.name}/{model_id}'}: capabilities override"
    try:
        return patched(
            resolved, overrides, source="override", overridden=patch_names(overrides), based_on=resolved.source
        )
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, where)) from None
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _provider(name: str) -> ProviderCapabilities:
    table = capability_table()
    if name not in table:
        raise ConfigError(f"the bundled capability data has no entry for provider {name!r}")
    return table[name]


def _from_data(spec: ProviderSpec, model_id: str) -> Capabilities:
    entry = _provider(spec.name)
    family = entry.family_for(model_id)
    if family is not None:
        return family.capabilities
    through_vendor = _through_vendor(entry, model_id)
    if through_vendor is not None:
        return through_vendor
    if entry.entry.unknown_models == "defaults":
        return entry.defaults
    known = [e for e in map_entries(spec.price_map, model_id) if e.get("mode") in CHAT_MODES]
    if known:
        reasoning = any(e.get("supports_reasoning") is True for e in known)  # either of its keys may say so
        chosen = entry.reasoning if reasoning else entry.defaults
        return _with(chosen, source="litellm map", family="supports_reasoning" if reasoning else None)
    return _with(entry.defaults, source="guess")


def _through_vendor(entry: ProviderCapabilities, model_id: str) -> Capabilities | None:
    """A router's model (`anthropic/claude-opus-4.7` on OpenRouter) with the visibility of the vendor's family:
    the router's wire, the vendor's reasoning. None when the vendor or its family is not in the data."""
    vendor_name, sep, name = model_id.partition("/")
    vendor = entry.entry.vendors.get(vendor_name.lower())
    if not sep or vendor is None or vendor.provider not in PROVIDERS:
        return None
    for old, new in vendor.replace.items():
        name = name.replace(old, new)
    family = _provider(vendor.provider).family_for(name)
    if family is None:
        return None
    theirs = family.capabilities
    chosen = entry.reasoning if theirs.reasoning_model else entry.defaults
    # The router drops parameters the model does not take instead of failing
    # (https://openrouter.ai/docs/api-reference/parameters), so what the vendor refuses is ignored here.
    dropped = tuple(sorted({*theirs.rejected_params, *theirs.ignored_params}))
    return _with(
        chosen,
        visibility=theirs.visibility,
        ignored_params=dropped,
        family=f"{vendor.provider}: {family.name}",
        reference=theirs.reference,
    )


def _with(base: Capabilities, **fields: Any) -> Capabilities:
    """`base` with provenance or a visibility changed (already validated values)."""
    provenance = {k: fields.pop(k) for k in ("source", "family", "reference") if k in fields}
    return patched(base, fields, **provenance)
