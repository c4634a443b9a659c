"""docker-compose.yml can't be run here (no Docker engine), so check what can be: its structure and references."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.policy_file import load
from gateway.settings import PACKAGE_ROOT, Settings
from tests.local_model import MAX_ADDRESS_SPACE_MB, SAFETY

COMPOSE = yaml.safe_load((PACKAGE_ROOT / "docker-compose.yml").read_text())


def test_services_and_dependencies() -> None:
    s = COMPOSE["services"]
    assert set(s) == {"model-files", "llama", "redis", "tiergate"}
    assert s["tiergate"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert s["tiergate"]["environment"]["TIERGATE_CACHE_URL"].startswith("redis://redis:6379")
    assert s["tiergate"]["depends_on"]["llama"]["condition"] == "service_healthy"
    assert s["llama"]["depends_on"]["model-files"]["condition"] == "service_completed_successfully"
    assert all("healthcheck" in s[n] for n in ("llama", "redis", "tiergate"))
    assert s["tiergate"]["ports"] == ["8000:8000"]
    for svc in s.values():
        for v in svc.get("volumes", []):
            assert v.split(":")[0] in COMPOSE["volumes"]


def test_gateway_environment_names_real_settings_and_a_valid_policy() -> None:
    env = COMPOSE["services"]["tiergate"]["environment"]
    cfg_path = PACKAGE_ROOT / Path(env["TIERGATE_CONFIG"]).relative_to("/app")
    cfg = load(cfg_path)
    # A setting of the process, or a variable the policy file itself names (the alert webhook's URL).
    fields = {f"TIERGATE_{k.upper()}" for k in Settings.model_fields} | {cfg.alerts.webhook_env}
    assert {k for k in env if k.startswith("TIERGATE_")} <= fields
    local = [m for m in cfg.models if m.local]
    assert local and all(m.api_base == "http://llama:8081/v1" for m in local)


def test_llama_service_serves_the_model_the_files_job_writes() -> None:
    s = COMPOSE["services"]
    model_arg = s["llama"]["command"][s["llama"]["command"].index("-m") + 1]
    assert model_arg in s["model-files"]["command"]
    assert "8081" in s["llama"]["command"]


def test_every_llama_server_launch_has_the_safety_flags_and_a_restart() -> None:
    """The tests' llama-server (tests/local_model.py), `make serve`'s and compose's read a last assistant message as a
    whole turn (prefilled, one with an end-of-turn token in JSON mode aborts the server); compose's and serve.sh's
    start it again if it exits all the same."""
    llama = COMPOSE["services"]["llama"]
    serve = (PACKAGE_ROOT / "scripts" / "serve.sh").read_text()
    assert SAFETY and all(flag in llama["command"] and flag in serve for flag in SAFETY)
    assert llama["restart"] == "unless-stopped"
    assert "supervise &" in serve


def test_every_llama_server_launch_caps_its_memory() -> None:
    """An inverted repetition range in a grammar makes llama.cpp allocate until something is killed; each launch
    bounds that to the server: an address-space cap (a failed allocation, a 400) for the tests' and serve.sh's, a
    memory limit (the container killed and restarted) for compose's."""
    serve = (PACKAGE_ROOT / "scripts" / "serve.sh").read_text()
    assert f'max_mb="${{TIERGATE_LLAMA_MAX_MEMORY_MB:-{MAX_ADDRESS_SPACE_MB}}}"' in serve
    assert 'ulimit -v $((max_mb * 1024)) && exec "$bin"' in serve
    assert COMPOSE["services"]["llama"]["mem_limit"] == "2g"


def test_dockerfile_copies_every_package() -> None:
    text = (PACKAGE_ROOT / "Dockerfile").read_text()
    for pkg in ("gateway", "router", "classifiers", "config"):
        assert f"COPY {pkg} {pkg}" in text
