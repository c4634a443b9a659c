from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.policy_file import PolicyFileError, load, parse
from gateway.settings import PACKAGE_ROOT
from tests.policies import config_dict


def _errors(d: object) -> list[str]:
    with pytest.raises(PolicyFileError) as e:
        parse(yaml.safe_dump(d, sort_keys=False), Path("p.yaml"))
    return e.value.errors


def test_shipped_configs_are_valid() -> None:
    for p in [PACKAGE_ROOT / "config" / "tiergate.yaml", *(PACKAGE_ROOT / "config" / "examples").glob("*.yaml")]:
        assert load(p).models


def test_unknown_key_names_its_path_and_line() -> None:
    d = config_dict()
    d["models"][1]["tierr"] = 1
    (err,) = _errors(d)
    assert err.startswith("models[1].tierr (line ")
    assert "Extra inputs are not permitted" in err


def test_bad_value_names_path() -> None:
    d = config_dict()
    d["models"][2]["tier"] = -1
    assert any(e.startswith("models[2].tier") and "greater than or equal to 0" in e for e in _errors(d))


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("tier", "  tier: yes\n"),
        ("capabilities.context_window", "  capabilities: {context_window: true}\n"),
        ("price.input_per_mtok", "  price: {input_per_mtok: off, output_per_mtok: 0}\n"),
    ],
)
def test_a_yaml_boolean_is_not_a_number(where: str, text: str) -> None:
    """YAML reads yes/no/on/off/true as booleans, and lax parsing took one as 1 or 0: `context_window: true` was a
    one-token window, `tier: yes` tier 1. A flag still takes them (`local: true`)."""
    head = "models:\n- name: m\n  litellm_model: openai/m\n  local: yes\n"
    body = "policies:\n  default: {thresholds: [0.5], baseline_model: m}\n"
    extra = "" if where == "tier" else "  tier: 0\n"
    with pytest.raises(PolicyFileError) as e:
        parse(head + extra + text + body, Path("p.yaml"))
    (err,) = e.value.errors
    assert err.startswith(f"models[0].{where} (line ") and "expected a number, got a boolean" in err
    assert parse(head + "  tier: 0\n" + body, Path("p.yaml")).models[0].local is True


def test_thresholds_must_increase_and_lie_inside_unit_interval() -> None:
    assert any("strictly increasing" in e for e in _errors(config_dict(thresholds=[0.7, 0.3])))
    assert any(e.startswith("policies.default.thresholds[1]") for e in _errors(config_dict(thresholds=[0.3, 1.5])))


def test_cross_references_are_checked() -> None:
    (err,) = _errors(config_dict(baseline_model="gpt-9"))
    assert "policies.default.baseline_model: unknown model 'gpt-9'" in err
    d = config_dict()
    d["models"].append(dict(d["models"][0]))
    assert any("duplicate model names ['local']" in e for e in _errors(d))


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(PolicyFileError, match="not valid YAML"):
        parse("models: [\n", Path("x.yaml"))
    with pytest.raises(PolicyFileError, match="expected a mapping"):
        parse("- 1\n", Path("x.yaml"))


def test_min_tier_counts_thresholds_passed() -> None:
    from tests.policies import config

    pol = config().policies["default"]
    assert [pol.min_tier(s) for s in (0.0, 0.35, 0.5, 0.7, 0.99)] == [0, 1, 1, 2, 2]


def test_aliases_map_names_to_policies_or_models_and_patterns_leave_models_alone() -> None:
    from router.policy import TiergateConfig

    d = config_dict()
    d["policies"]["frugal"] = dict(d["policies"]["default"])
    d["aliases"] = {"big": "frugal", "gpt-3.5-turbo": "mid", "gpt-*": "default", "claude-?-*": "frugal"}
    cfg = TiergateConfig.model_validate(d)
    assert cfg.alias("big") == "frugal"  # an exact alias takes a model's own name
    assert cfg.alias("gpt-3.5-turbo") == "mid"  # exact before any pattern
    assert cfg.alias("gpt-4o-2024-08-06") == "default"
    assert cfg.alias("claude-3-opus") == "frugal" and cfg.alias("claude-opus") is None
    assert cfg.alias("mid") is None  # a configured model is never taken by a pattern
    assert cfg.alias("GPT-4") is None  # patterns are case-sensitive, as model names are
    d["aliases"] = {"text-embedding-3-small": "all-minilm-l6-v2", "all-*": "default"}  # the built-in embedder
    cfg = TiergateConfig.model_validate(d)
    assert cfg.alias("text-embedding-3-small") == "all-minilm-l6-v2"
    assert cfg.alias("all-minilm-l6-v2") is None  # an embedding model's own name is never taken by a pattern
    for bad, msg in (
        ({"x": "nope"}, "aliases.x: unknown policy or model 'nope'"),
        ({"auto": "default"}, "aliases.auto: a policy name (or auto)"),
        ({"frugal": "default"}, "aliases.frugal: a policy name (or auto)"),
    ):
        d["aliases"] = bad
        assert any(msg in e for e in _errors(d)), bad


def test_retry_waits_double_with_jitter_up_to_a_cap_and_honour_a_short_retry_after() -> None:
    from router.policy import Retry

    r = Retry(attempts=4, backoff_s=1.0, max_wait_s=3.0)
    assert [r.wait_s(n, None, 0.0) for n in range(4)] == [0.5, 1.0, 1.5, 1.5]  # half fixed, capped at 3 s
    assert [r.wait_s(n, None, 0.999) for n in range(4)] == pytest.approx([1.0, 2.0, 3.0, 3.0], abs=0.01)
    assert r.wait_s(4, None, 0.5) is None  # attempts used up
    assert r.wait_s(0, 2.5, 0.5) == 2.5  # the server said when: that long, not the backoff
    assert r.wait_s(0, 30.0, 0.5) is None  # longer than max_wait_s: not worth waiting, the next model instead
    assert Retry().wait_s(0, None, 0.5) is None  # off by default
    with pytest.raises(ValueError):
        Retry(on_status=[200])


def test_environment_variables_fill_string_values_with_defaults_and_escapes() -> None:
    d = config_dict()
    d["models"][0]["api_base"] = "${LLAMA_URL:-http://127.0.0.1:8081/v1}"
    d["models"][1]["api_base"] = "https://${REGION}.example.com/v1"
    d["models"][2]["tier"] = "${MIDB_TIER}"  # any scalar: pydantic reads "1" as the tier it names
    d["policies"]["default"]["description"] = "costs $${ANYTHING} and ${ALSO:-}"
    text = yaml.safe_dump(d, sort_keys=False)
    cfg = parse(text, Path("p.yaml"), {"REGION": "eu", "MIDB_TIER": "1"})
    assert cfg.models[0].api_base == "http://127.0.0.1:8081/v1"  # unset: the default
    assert cfg.models[1].api_base == "https://eu.example.com/v1" and cfg.models[2].tier == 1
    assert cfg.policies["default"].description == "costs ${ANYTHING} and "
    cfg = parse(text, Path("p.yaml"), {"REGION": "us", "MIDB_TIER": "1", "LLAMA_URL": "http://llama:8081/v1"})
    assert cfg.models[0].api_base == "http://llama:8081/v1"
    with pytest.raises(PolicyFileError) as e:
        parse(text, Path("p.yaml"), {"MIDB_TIER": "1"})
    (err,) = e.value.errors
    assert err.startswith("models[1].api_base (line ") and "${REGION} is not set" in err
