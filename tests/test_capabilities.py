"""Capabilities as data: the bundled table, the resolution order (override > family > litellm's map > guess), overrides
through the Bridge and the study file, and what the study plan says about each model.

Requests go to the fault server (tests/fault_server.py) in DeepSeek's chat format; nothing here is a mock."""

from __future__ import annotations

import dataclasses
import importlib.util
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError, load_dataset
from cotbridge.providers import PROVIDERS
from cotbridge.providers.capabilities import DATA_FILE, Capabilities, CapabilityFile, capability_table
from cotbridge.providers.capability_resolution import resolve_capabilities
from cotbridge.providers.litellm_map import bundled_price_map
from cotbridge.records import Condition, Variant
from cotbridge.study import parse_study, run_study
from cotbridge.study.fingerprint import trial_fingerprint
from cotbridge.study.phases import Progress
from tests.fault_server import FaultServer

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-capabilities-test-3e9a41"
needs_litellm = pytest.mark.skipif(
    importlib.util.find_spec("litellm") is None, reason="litellm's bundled map comes with the extra `hosted`"
)


def resolved(model: str) -> Capabilities:
    provider, _, model_id = model.partition("/")
    return resolve_capabilities(PROVIDERS[provider], model_id)


@pytest.fixture
def deepseek_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", SECRET)


@needs_litellm
def test_every_reasoning_chat_model_in_the_bundled_map_is_a_reasoning_model() -> None:
    recognised, missed = [], []
    for key, entry in bundled_price_map().items():
        if not isinstance(entry, dict) or entry.get("mode") != "chat" or entry.get("supports_reasoning") is not True:
            continue
        provider = entry.get("litellm_provider")
        if provider not in ("openai", "anthropic", "gemini", "deepseek"):
            continue
        prefix = PROVIDERS[provider].price_map[0]  # type: ignore[index]
        model_id = key[len(prefix) :] if prefix and key.startswith(prefix) else key
        caps = resolve_capabilities(PROVIDERS[provider], model_id)
        (recognised if caps.reasoning_model else missed).append(f"{provider}/{model_id}")
        assert caps.source in ("bundled data", "litellm map"), (key, caps.source)
    assert not missed, f"litellm's map says these reason, cotbridge does not: {missed}"
    assert len(recognised) > 100  # 115 map keys in litellm 1.110.2


def test_claude_sonnet_5_and_opus_5_think_adaptively_and_hide_it() -> None:
    for model in ("anthropic/claude-sonnet-5", "anthropic/claude-opus-5"):
        caps = resolved(model)
        assert caps.reasoning_model and caps.visibility == "omitted", model
        assert caps.thinking.control == "adaptive" and caps.thinking.on_by_default, model
        assert caps.source == "bundled data" and caps.family == "Claude Opus 5 and Sonnet 5", model
        assert caps.reference is not None and caps.reference.startswith("https://")
        assert "temperature" in caps.rejected_params and not caps.seed and caps.max_tokens_includes_cot


def test_family_membership_is_data_and_the_longest_prefix_wins() -> None:
    assert resolved("anthropic/claude-opus-5-5").family == "Claude 5.5, Fable 5.1 and Mythos 5.1 (always thinking)"
    assert not resolved("anthropic/claude-opus-5-5").thinking.can_disable
    assert resolved("anthropic/claude-opus-4-7-20260416").visibility == "omitted"
    assert resolved("anthropic/claude-sonnet-4-5").thinking.control == "budget"
    assert resolved("anthropic/claude-sonnet-4-5").thinking.min_budget == 1024
    assert resolved("anthropic/claude-3-7-sonnet-latest").visibility == "raw"
    assert resolved("openai/gpt-5.1-2025-11-13").thinking.default_effort == "none"
    assert resolved("openai/gpt-5-mini").thinking.efforts == ("minimal", "low", "medium", "high")
    assert resolved("gemini/gemini-3-flash-preview").thinking.control == "level"
    assert resolved("gemini/gemini-2.5-pro").thinking.control == "budget"
    reasoner = resolved("deepseek/deepseek-reasoner")
    assert reasoner.visibility == "raw" and "logprobs" in reasoner.rejected_params
    assert "temperature" in reasoner.ignored_params and not reasoner.logprobs


def test_resolution_order_and_where_each_result_came_from() -> None:
    assert resolved("openai/o3").source == "bundled data"
    guess = resolved("openai/no-such-model")
    assert (guess.source, guess.visibility, guess.reasoning_model) == ("guess", "none", False)
    served = resolved("vllm/Qwen/QwQ-32B")  # the server decides, not the model: never a guess
    assert (served.source, served.visibility, served.prompt_scoring) == ("bundled data", "raw", "prompt-logprobs")
    assert resolved("together/anything/at-all").source == "bundled data"
    routed = resolved("openrouter/anthropic/claude-opus-4.7")  # OpenRouter's wire, the vendor's visibility
    assert routed.visibility == "omitted" and routed.family == "anthropic: Claude Opus 4.7 and 4.8 (adaptive only)"
    assert routed.thinking.control == "effort" and routed.reasoning_field
    assert resolved("openrouter/openai/o3").visibility == "summary"
    assert resolved("openrouter/someone/unknown-model").source == "guess"


@needs_litellm
def test_litellm_map_places_models_the_data_file_does_not_name() -> None:
    newer = resolved("openai/gpt-6-sol")
    assert (newer.source, newer.family, newer.visibility) == ("litellm map", "supports_reasoning", "summary")
    plain = resolved("openai/gpt-4.1")
    assert (plain.source, plain.visibility, plain.logprobs) == ("litellm map", "none", True)
    assert resolved("gemini/gemini-exp-1206").reasoning_model  # its bare key says reasoning, its prefixed key not


async def test_an_override_is_part_of_what_makes_a_distinct_model(faults: FaultServer, deepseek_key: None) -> None:
    async with Bridge() as bridge:
        plain = bridge.model("deepseek/ok", base_url=faults.base_url)
        raw = bridge.model("deepseek/ok", base_url=faults.base_url, capabilities={"visibility": "raw"})
        again = bridge.model("deepseek/ok", base_url=faults.base_url, capabilities={"visibility": "raw"})
        tuned = bridge.model(
            "deepseek/ok", base_url=faults.base_url, capabilities={"thinking": {"control": "effort", "efforts": ["x"]}}
        )
        answer = await raw.chat([{"role": "user", "content": "What is 17 + 25?"}])
    assert raw is again and raw is not plain and tuned is not raw
    assert plain.capabilities.source == "guess" and plain.capabilities.visibility == "none"
    caps = raw.capabilities
    assert (caps.source, caps.based_on, caps.overridden, caps.visibility) == (
        "override",
        "guess",
        ("visibility",),
        "raw",
    )
    assert raw.provider.capabilities is caps and plain.provider.capabilities.visibility == "none"
    assert tuned.capabilities.thinking.control == "effort" and tuned.capabilities.thinking.efforts == ("x",)
    assert tuned.capabilities.thinking.on_by_default is False  # the other thinking fields stay as they were
    assert tuned.capabilities.overridden == ("thinking.control", "thinking.efforts")
    assert answer.text.startswith("answer ")


@needs_litellm
async def test_an_anthropic_model_takes_an_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    async with Bridge() as bridge:
        model = bridge.model("anthropic/claude-opus-5", capabilities={"visibility": "raw"})
    assert model.capabilities.visibility == "raw" and model.capabilities.based_on == "bundled data"
    assert model.capabilities.family == "Claude Opus 5 and Sonnet 5"  # everything else still from its family


async def test_a_misspelt_override_names_the_model_and_the_field(faults: FaultServer, deepseek_key: None) -> None:
    async with Bridge() as bridge:
        for wrong, named in [
            ({"visiblity": "raw"}, "unknown capability 'visiblity'"),
            ({"thinking": {"contrl": "effort"}}, "unknown capability 'thinking.contrl'"),
            ({"visibility": "full"}, r"\[visibility\]"),
            ({"seed": "yes"}, r"\[seed\]"),
            ({"source": "bundled data"}, "cotbridge sets it"),
        ]:
            with pytest.raises(ConfigError, match=rf"(?s)deepseek/ok: capabilities override.*{named}"):
                bridge.model("deepseek/ok", base_url=faults.base_url, capabilities=wrong)
    assert faults.total == 0
    with pytest.raises(ConfigError, match=r"(?s)s\.toml.*\[models\.m\.capabilities\].*unknown capability 'visiblity'"):
        parse_study(study_text(faults.base_url) + 'capabilities = { visiblity = "raw" }\n', "s.toml")


STUDY = """
[study]
name = "caps"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty", "transfer"]

[study.decoding]
cot_max_tokens = 16
answer_max_tokens = 8

[models.known]
model = "deepseek/deepseek-reasoner"
base_url = "{faults}"

[models.m]
base_url = "{faults}"
{m}
"""
GUESSED = 'model = "deepseek/ok"\ngenerator = false'


def study_text(faults: str, m: str = GUESSED) -> str:
    return STUDY.format(faults=faults, m=m)


async def test_the_plan_says_where_capabilities_came_from_and_a_guess_says_so(
    faults: FaultServer, deepseek_key: None, tmp_path: Path
) -> None:
    events: list[Progress] = []
    config = parse_study(study_text(faults.base_url))
    summary = await run_study(config, tmp_path / "r.db", on_progress=events.append)
    assert not summary.failures and summary.trials > 0
    (plan,) = [event.plan for event in events if event.phase == "plan"]
    assert plan is not None
    rows = {row["name"]: row for row in plan}
    assert rows["m"]["capabilities from"].startswith("guessed (unknown model)")
    assert rows["m"]["CoT visible"] == "none" and rows["m"]["thinking"] == "-"
    assert rows["known"]["capabilities from"] == "bundled data: DeepSeek reasoner"
    assert rows["known"]["CoT visible"] == "raw" and rows["known"]["thinking"] == "always on"
    assert events[0].phase == "plan"  # before the first request


async def test_a_generator_whose_cot_is_not_raw_is_refused_and_an_override_lets_it(
    faults: FaultServer, deepseek_key: None, tmp_path: Path
) -> None:
    text = study_text(faults.base_url)
    hidden = text.replace("[models.m]", '[models.known.capabilities]\nvisibility = "omitted"\n\n[models.m]')
    with pytest.raises(ConfigError, match=r"\[models\.known\].*thinks but returns none of its reasoning"):
        await run_study(parse_study(hidden), tmp_path / "hidden.db")
    assert faults.total == 0
    # The fault server's `reasoner` is unknown to the data: a guess, which an override makes a raw generator.
    vouched = study_text(faults.base_url, 'model = "deepseek/reasoner"\ncapabilities = { visibility = "raw" }')
    events: list[Progress] = []
    summary = await run_study(parse_study(vouched), tmp_path / "vouched.db", on_progress=events.append)
    (plan,) = [event.plan for event in events if event.plan is not None]
    rows = {row["name"]: row for row in plan}
    assert rows["m"]["capabilities from"] == "override of visibility over a guess (unknown model)"
    assert rows["m"]["roles"] == "generator, evaluator" and not summary.failures


def test_an_override_changes_the_trial_fingerprint_and_none_leaves_it_alone() -> None:
    text = study_text("http://127.0.0.1:9/v1")
    problem = load_dataset("builtin:arithmetic")[0]

    def fingerprint(study: str) -> str:
        config = parse_study(study)
        return trial_fingerprint(config, "m", Variant.FULL, Condition.TRANSFER, "known", 0, problem)

    plain = fingerprint(text)
    assert fingerprint(text + "capabilities = {}\n") == plain
    assert fingerprint(text + 'capabilities = { visibility = "raw" }\n') != plain


def test_the_data_file_ships_validates_strictly_and_cites_its_sources() -> None:
    packaged = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "providers/*.toml" in packaged["cotbridge"]
    text = resources.files("cotbridge.providers").joinpath(DATA_FILE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    table = capability_table()
    assert set(table) == set(PROVIDERS)  # every provider has an entry, and no entry names a provider that is not
    for name, provider in data["providers"].items():
        assert provider["source"].startswith("https://"), name
        for family in provider.get("families", []):
            assert family["source"].startswith("https://") and (family.get("ids") or family.get("prefixes")), family[
                "name"
            ]
    misspelt = {**data, "providers": {**data["providers"], "vllm": {**data["providers"]["vllm"], "unknwn": 1}}}
    with pytest.raises(Exception, match="unknwn"):
        CapabilityFile.model_validate(misspelt)
    loose = {**data, "schema_version": "1"}
    with pytest.raises(Exception, match="schema_version"):
        CapabilityFile.model_validate(loose)


def test_capabilities_stay_one_frozen_type_for_every_consumer() -> None:
    caps = Capabilities()
    assert dataclasses.replace(caps, n_samples=False).n_samples is False  # tests/fake_provider.py does this
    assert caps.reasoning_visibility == caps.visibility == "raw" and caps.source is None
    with pytest.raises(Exception, match="visibility"):
        dataclasses.replace(caps, visibility="full")


@pytest.mark.skipif(importlib.util.find_spec("litellm") is None, reason="anthropic/ and gemini/ need litellm")
async def test_the_mixed_example_plan_says_what_each_model_shows_and_refuses_a_summary_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("DEEPSEEK_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(variable, "sk-plan-test")
    text = (REPO / "examples" / "mixed_open_closed.toml").read_text(encoding="utf-8")
    plans: list[list[dict[str, str]]] = []

    def keep_plan(event: Progress) -> None:
        if event.plan is not None:
            plans.append(event.plan)

    await run_study(parse_study(text), tmp_path / "plan.db", on_progress=keep_plan, problems=[])
    rows = {row["name"]: row for row in plans[0]}
    assert {name: row["CoT visible"] for name, row in rows.items()} == {
        "qwq": "raw",
        "deepseek": "raw",
        "claude": "omitted",
        "gpt5": "summary",
        "gemini": "summary",
    }
    assert rows["claude"]["thinking"].startswith("adaptive") and rows["gemini"]["thinking"].startswith("level")
    assert "cotbridge asks medium" in rows["gpt5"]["thinking"]
    assert {row["injection"] for name, row in rows.items() if name != "qwq"} == {"context"}
    assert rows["claude"]["USD per M in/out"] == "2 / 10" and rows["deepseek"]["USD per M in/out"] != "-"
    hosted = ("deepseek", "claude", "gpt5", "gemini")
    assert all(rows[name]["capabilities from"].startswith("bundled data: ") for name in hosted)
    as_generator = text.replace("generator = false\nconcurrency = 4", "generator = true\nconcurrency = 4")
    assert as_generator.count("generator = true") == 1
    with pytest.raises(ConfigError, match="claude"):
        await run_study(parse_study(as_generator), tmp_path / "refused.db", problems=[])


def test_open_reasoning_models_behind_openrouter_are_raw_and_others_stay_guesses() -> None:
    spec = PROVIDERS["openrouter"]
    for model_id in ("qwen/qwq-32b", "openai/gpt-oss-120b", "deepseek/deepseek-r1-0528"):
        resolved = resolve_capabilities(spec, model_id)
        assert (resolved.visibility, resolved.family) == ("raw", "Open-weight reasoning models"), model_id
    assert resolve_capabilities(spec, "openai/o3").visibility == "summary"
    assert resolve_capabilities(spec, "qwen/qwen3-235b-a22b-2507").source == "guess"


def test_a_routed_model_ignores_what_its_vendor_refuses_so_greedy_is_not_claimed() -> None:
    from cotbridge.providers.capabilities import greedy_text

    routed = resolve_capabilities(PROVIDERS["openrouter"], "openai/o3")
    assert "temperature" in routed.ignored_params and greedy_text(routed).startswith("no")
    assert greedy_text(resolve_capabilities(PROVIDERS["openrouter"], "qwen/qwq-32b")) == "yes"
