"""The key check on its own: what a header presents, which paths are open, and the config's rules for keys."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from gateway.auth import Gate, Refused, digest, presented_key
from gateway.errors import PermissionDenied, Unauthorized
from router.policy import ApiKey, Budget, TiergateConfig


def _basic(cred: str) -> str:
    return "Basic " + base64.b64encode(cred.encode()).decode()


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Bearer ", None),
        ("", None),
        ("Token abc", None),
        (_basic("user:abc"), "abc"),
        (_basic("abc"), None),  # no password
        ("Basic not-base64!", None),
    ],
)
def test_the_key_a_header_presents(header: str, key: str | None) -> None:
    assert presented_key(header) == key


def _refused(gate: Gate, path: str, authorization: str) -> Refused:
    with pytest.raises(Refused) as r:
        gate.admit(path, authorization)
    return r.value


def test_open_paths_client_paths_and_the_books() -> None:
    app, ops = ApiKey(name="app", sha256=digest("k1")), ApiKey(name="ops", sha256=digest("k2"), admin=True)
    gate = Gate([app, ops])
    assert gate.enabled and not Gate([]).enabled
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/static/dashboard.js"):
        assert gate.admit(path, "") is None
    no_key = _refused(gate, "/v1/chat/completions", "")
    assert isinstance(no_key.error, Unauthorized) and no_key.headers == {"www-authenticate": "Bearer"}
    wrong = _refused(gate, "/v1/chat/completions", "Bearer k3")
    assert isinstance(wrong.error, Unauthorized) and wrong.error.code == "invalid_api_key"
    assert gate.admit("/v1/chat/completions", "Bearer k1") == app
    assert isinstance(_refused(gate, "/api/stats", "Bearer k1").error, PermissionDenied)
    assert gate.admit("/api/stats", "Bearer k2") == ops and gate.admit("/dashboard", _basic("x:k2")) == ops
    assert _refused(gate, "/metrics", "").headers["www-authenticate"].startswith("Basic")


def test_keys_in_the_config_are_digests_and_unique() -> None:
    base = {
        "models": [{"name": "m", "litellm_model": "openai/m", "tier": 0}],
        "policies": {"default": {"thresholds": [0.5], "baseline_model": "m"}},
    }
    ok = TiergateConfig.model_validate({**base, "keys": [{"name": "a", "sha256": digest("x")}]})
    assert ok.keys[0].admin is False
    for keys in (
        [{"name": "a", "sha256": "not-a-digest"}],
        [{"name": "a", "sha256": digest("x").upper()}],
        [{"name": "a", "sha256": digest("x")}, {"name": "a", "sha256": digest("y")}],
        [{"name": "a", "sha256": digest("x")}, {"name": "b", "sha256": digest("x")}],
        [{"name": "a", "sha256": digest("x"), "key": "x"}],  # a typo'd or plaintext field is refused
        [{"name": "a", "sha256": digest("x"), "policies": ["nope"]}],
        [{"name": "a", "sha256": digest("x"), "policies": []}],
    ):
        with pytest.raises(ValidationError):
            TiergateConfig.model_validate({**base, "keys": keys})


def test_new_key_prints_the_key_once_and_an_entry_holding_only_its_digest(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from gateway.cli import main

    assert main(["new-key", "team: a", "--admin"]) == 0
    out, err = capsys.readouterr()
    key = err.split("shown once; give it to the client): ", 1)[1].split()[0]
    assert key.startswith("tg-") and len(key) > 40 and key not in out
    entry = ApiKey.model_validate(yaml.safe_load(out)[0])  # the line pastes under `keys:` as it is
    assert entry == ApiKey(name="team: a", sha256=digest(key), admin=True)
    assert Gate([entry]).admit("/api/stats", f"Bearer {key}") == entry

    assert main(["new-key", "trial", "--rpm", "60", "--tpm", "90000", "--budget", "5", "--per", "7d"]) == 0
    out, err = capsys.readouterr()
    key = err.split("shown once; give it to the client): ", 1)[1].split()[0]
    limited = ApiKey.model_validate(yaml.safe_load(out)[0])
    assert limited == ApiKey(name="trial", sha256=digest(key), rpm=60, tpm=90000, budget=Budget(usd=5.0, per="7d"))
    assert main(["new-key", "trial", "--budget", "5", "--per", "monthly"]) == 2  # as the config would refuse it
    out, err = capsys.readouterr()
    assert out == "" and "budget.per" in err and "expected a duration like 30m" in err
