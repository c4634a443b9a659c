"""The policy file watcher (gateway/reload.py) on a real file: what it applies, what it refuses, and how often it
says so."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from gateway.reload import PolicyWatcher
from router.policy import TiergateConfig

MODEL = {"name": "m", "litellm_model": "openai/m", "api_base": "http://127.0.0.1:9/v1", "tier": 0}


def _policy(threshold: float) -> str:
    doc = {"models": [MODEL], "policies": {"default": {"thresholds": [threshold], "baseline_model": "m"}}}
    return yaml.safe_dump(doc)


def test_a_valid_edit_is_applied_once_and_an_invalid_one_is_refused_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tiergate.yaml"
    path.write_text(_policy(0.5))
    applied: list[TiergateConfig] = []
    watcher = PolicyWatcher(path, applied.append)
    watcher.start()

    async def go() -> list[bool]:
        seen = [await watcher.check()]  # unchanged since start: nothing to do
        path.write_text(_policy(0.25))
        seen += [await watcher.check(), await watcher.check()]
        path.write_text("models: [\n")  # an editor's half-written save
        seen += [await watcher.check(), await watcher.check()]
        path.write_text(_policy(0.75).replace("tier: 0", "tier: zero"))
        seen.append(await watcher.check())
        path.unlink()  # a ConfigMap's symlink swap, caught in the middle
        seen.append(await watcher.check())
        path.write_text(_policy(0.75))
        seen.append(await watcher.check())
        return seen

    with caplog.at_level(logging.INFO, logger="tiergate.reload"):
        seen = asyncio.run(go())
    assert seen == [False, True, False, False, False, False, False, True]
    assert [c.policies["default"].thresholds for c in applied] == [[0.25], [0.75]]
    assert watcher.reloads == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2  # once per bad version, not once per look
    assert "not valid YAML" in errors[0] and "models[0].tier" in errors[1]
    assert "the policy in force stays" in errors[0]
