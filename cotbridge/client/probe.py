"""What a model's server actually does, found by asking it: health, served models, chat, log-probs, completions and
prompt scoring. `cotbridge models check` shows the result; it is one tiny request per operation."""

from __future__ import annotations

from cotbridge.client.model import Model
from cotbridge.errors import ProviderError, UnsupportedOperation
from cotbridge.formats import THINK_OPEN
from cotbridge.providers.capabilities import provenance_text, thinking_text

PROBE = [{"role": "user", "content": "Say OK."}]


async def probe(model: Model) -> dict[str, str]:
    """One row of facts about a model's server, each "yes", "no (why)" or a value; stops after a failed health
    check. What the server's answers made cotbridge change (the bridge's notes, e.g. a reasoning summary the vendor
    refused) is under "notes", and "CoT visible" says what is visible after the answers."""
    caps = model.capabilities
    noted = len(model.stats.notes)
    row = {
        "provider": model.provider.name,
        "CoT visible": caps.visibility,
        "thinking": thinking_text(caps),
        "capabilities from": provenance_text(caps),
    }
    try:
        await model.start()
        health = await model.provider.health()
    except ProviderError as exc:
        row["health"] = f"down: {exc.detail[:60]}"
        return row
    row["health"] = "ok"
    row["served"] = ", ".join(str(s) for s in health.get("served_models", [])) or "?"
    try:
        chat = await model.chat(PROBE, max_tokens=4, logprobs=1 if caps.logprobs else None)
        row["chat"] = "yes"
        row["logprobs"] = "yes" if chat.logprobs else "no"
        row["reasoning field"] = "yes" if caps.reasoning_field else f"inline {THINK_OPEN} only"
    except ProviderError as exc:
        row["chat"] = f"no ({exc.status})"
    try:
        await model.complete("Hello", max_tokens=2)
        row["completions"] = "yes"
    except ProviderError as exc:
        row["completions"] = f"no ({exc.status})"
    except UnsupportedOperation:
        row["completions"] = "no (none in this API)"
    try:
        scored = await model.score("The sky is", " blue.")
        row["prompt scoring"] = f"yes ({scored.method})"
    except (UnsupportedOperation, ProviderError) as exc:
        row["prompt scoring"] = f"no: {str(exc)[:60]}"
    row["CoT visible"] = model.capabilities.visibility
    if notes := model.stats.notes[noted:]:  # probes run one after another, so the new notes are this model's
        row["notes"] = "; ".join(notes)
    return row
