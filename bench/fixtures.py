"""What the benchmarks share: a policy file whose one model is the fake upstream at a given port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.fakes.server import wait_http


def write_one_model_config(path: Path, upstream_port: int) -> Path:
    """A policy YAML with one priced OpenAI-compatible model `fast` at the fake upstream; returns the path."""
    cfg = {
        "models": [
            {
                "name": "fast",
                "litellm_model": "openai/fast",
                "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                "tier": 0,
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            }
        ],
        "policies": {"default": {"thresholds": [0.5], "baseline_model": "fast"}},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_two_model_config(path: Path, upstream: str) -> Path:
    """bench.gateways' policy YAML: `fast` (tier 0) and `strong` (tier 1, the baseline), both at the upstream base
    URL `upstream`, unpriced; returns the path."""
    cfg = {
        "models": [
            {"name": "fast", "litellm_model": "openai/fast", "api_base": upstream, "tier": 0},
            {"name": "strong", "litellm_model": "openai/strong", "api_base": upstream, "tier": 1},
        ],
        "policies": {"default": {"thresholds": [0.5], "baseline_model": "strong"}},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    """The fake OpenAI-compatible upstream (tests/fakes/upstream.py) on `port`; returns once it answers."""
    up = subprocess.Popen([sys.executable, "-m", "tests.fakes.upstream", str(port)], stdout=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/v1/models", 60, up)
    return up


def start_tiergate(config: Path, port: int, env: dict[str, str], workers: int = 1) -> subprocess.Popen[bytes]:
    """`tiergate serve` with `config` on `port` (extra environment `env`); returns once it is ready."""
    args = ["serve", "--config", str(config), "--port", str(port), "--workers", str(workers)]
    gw = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, "TIERGATE_LOG_LEVEL": "warning", **env},
        stdout=subprocess.DEVNULL,  # warnings and errors still reach stderr
    )
    wait_http(f"http://127.0.0.1:{port}/readyz", 300, gw)
    return gw


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=60)


def write_docs_block(path: Path, marker: str, cmd: str, text: str) -> None:
    """Replace what lies between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` in the markdown file at
    `path` with `text`, under the command that made it and today's date."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    doc = path.read_text(encoding="utf-8")
    if start not in doc or end not in doc:
        raise SystemExit(f"{path}: no {start} ... {end} markers to write between")
    block = f"{start}\n```sh\n{cmd}     # {time.strftime('%Y-%m-%d')}\n```\n\n{text}\n{end}"
    head, rest = doc.split(start, 1)
    path.write_text(head + block + rest.split(end, 1)[1], encoding="utf-8")
