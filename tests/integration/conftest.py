"""Real processes: llama.cpp's llama-server with SmolLM2-135M-Instruct, and `tiergate serve` itself.

Nothing here is skipped when a part is missing: `make test` builds and installs every part first, and a missing
one is a failed set-up, not a reason to pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from gateway.settings import PACKAGE_ROOT
from tests.fakes.server import wait_http
from tests.fakes.upstream import FakeUpstream, free_port
from tests.local_model import start_llama_server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = start_llama_server(port, tmp_path_factory.mktemp("llama") / "llama-server.log")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def e2e_config(llama_base: str, hosted_base: str) -> dict[str, object]:
    """The shipped default policy, with the local model at the test's llama-server and hosted models at the fake."""
    cfg = yaml.safe_load((PACKAGE_ROOT / "config" / "tiergate.yaml").read_text())
    for m in cfg["models"]:
        if m.get("local"):
            m["api_base"] = llama_base
        else:
            m["api_base"] = hosted_base
            m["api_key_env"] = "TIERGATE_E2E_KEY"
    # Cascade mode on the real local model: one policy trusts any draft, one trusts none.
    for name, conf in (("cascade-keep", 0.001), ("cascade-escalate", 0.999)):
        cfg["policies"][name] = {
            **cfg["policies"]["default"],
            "cascade": {"below_score": 1.0, "min_confidence": conf},
        }
    return dict(cfg)


class Gateway:
    def __init__(self, url: str, ledger: Path) -> None:
        self.url = url
        self.ledger = ledger


@pytest.fixture(scope="session")
def hosted() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def tiergate(llama_server: str, hosted: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serving(e2e_config(llama_server, hosted.base_url), tmp_path_factory.mktemp("tiergate")) as g:
        yield g


@contextmanager
def serving(config: dict[str, object], d: Path, *args: str) -> Iterator[Gateway]:
    """`tiergate serve` as a user starts it: its own process, the real classifier artifact and encoder; the policy
    file, ledger and log in `d`; `args` added to its command line."""
    cfg = d / "tiergate.yaml"
    cfg.write_text(yaml.safe_dump(config))
    port = free_port()
    ledger = d / "ledger.sqlite3"
    log = d / "tiergate.log"
    env = {**os.environ, "TIERGATE_LEDGER_PATH": str(ledger), "TIERGATE_E2E_KEY": "sk-e2e-secret"}
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(cfg), "--port", str(port), *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=d,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 180, proc, log)
        yield Gateway(f"http://127.0.0.1:{port}", ledger)
    finally:
        proc.terminate()  # SIGTERM: uvicorn shuts down cleanly, the ledger is drained
        proc.wait(timeout=30)
