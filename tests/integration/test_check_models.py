"""`tiergate check-models` as a user runs it: the shipped policy with its local model on a real llama-server and the
hosted models on the fake upstream; a hosted model whose key is refused, a deployment on a dead port and a model
whose key variable is unset are each reported as what they are, and the exit status says whether all answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fakes.upstream import FakeUpstream, free_port
from tests.integration.conftest import e2e_config


def _run(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIERGATE_E2E_KEY": "sk-test"}
    env.pop("TIERGATE_CHECK_UNSET", None)
    cmd = [sys.executable, "-m", "gateway.cli", "check-models", "--config", str(cfg), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def hosted() -> Iterator[FakeUpstream]:
    """Its own fake, not the session's: this test scripts failures that other tests must not meet."""
    up = FakeUpstream().start()
    yield up
    up.stop()


def test_check_models_reports_each_server(llama_server: str, hosted: FakeUpstream, tmp_path: Path) -> None:
    cfg = e2e_config(llama_server, hosted.base_url)
    models = cfg["models"]
    assert isinstance(models, list)
    local = next(m for m in models if m.get("local"))
    first_hosted = next(m for m in models if not m.get("local"))
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ok = _run(path, "--format", "json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rows = {r["server"]: r for r in json.loads(ok.stdout)}
    assert set(rows) == {m["name"] for m in models}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    assert rows[local["name"]]["completion_tokens"] == 1  # the real model, asked for one token
    assert rows[local["name"]]["cost_usd"] == 0.0
    assert hosted.calls_for(first_hosted["litellm_model"].split("/", 1)[1]) == 1

    hosted.script(first_hosted["litellm_model"].split("/", 1)[1], status=401, message="bad key")
    first_hosted["deployments"] = [{"api_base": f"http://127.0.0.1:{free_port()}/v1"}]
    models.append({**local, "name": "keyless", "api_key_env": "TIERGATE_CHECK_UNSET"})
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(cfg))
    bad = _run(path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    lines = {line.split()[0]: line for line in bad.stdout.splitlines()[1:]}
    name = first_hosted["name"]
    assert "HTTP 401" in lines[f"{name}#1"] and "bad key" in lines[f"{name}#1"]
    assert "HTTP 502: connection failed" in lines[f"{name}#2"]
    assert "no key ($TIERGATE_CHECK_UNSET is unset)" in lines["keyless"]
    assert lines[local["name"]].split()[2] == "ok"
    assert _run(path, "--model", "nope").returncode == 2
