"""The local model goes away and comes back, on real processes: llama-server killed under `tiergate serve`, easy
prompts answered by the hosted tier meanwhile, the local model passed over once it has failed enough (no request
waits on its refused connections), and taken back after its cooldown once llama-server runs again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.fakes.upstream import FakeUpstream, free_port
from tests.integration.conftest import Gateway, e2e_config, serving
from tests.integration.test_e2e import EASY
from tests.local_model import start_llama_server


def _ask(g: Gateway) -> Any:
    client = openai.OpenAI(base_url=f"{g.url}/v1", api_key="unused", max_retries=0, timeout=120)
    # Not deterministic, so never cached: every request is routed.
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], max_tokens=8
    )


def _local(g: Gateway) -> dict[str, Any]:
    found: list[dict[str, Any]] = httpx.get(f"{g.url}/v1/models").json()["data"]
    return next(m for m in found if m["id"] == "smollm2-local")


def test_a_dead_local_model_cools_down_and_is_taken_back_when_it_returns(hosted: FakeUpstream, tmp_path: Path) -> None:
    port = free_port()
    llama = start_llama_server(port, tmp_path / "llama-1.log")
    cfg = e2e_config(f"http://127.0.0.1:{port}/v1", hosted.base_url)
    cfg["cooldown"] = {"failures": 2, "window_s": 60, "cooldown_s": 2}
    try:
        # One worker: each keeps its own cooldown counts (README), and this test follows one worker's.
        with serving(cfg, tmp_path, "--workers", "1") as g:
            assert _ask(g).headers["x-tiergate-model"] == "smollm2-local"
            llama.terminate()
            llama.wait(timeout=20)
            for _ in range(2):
                r = _ask(g)  # refused by the dead server, answered by the next tier: the client sees no error
                assert r.headers["x-tiergate-model"] == "gpt-4o-mini"
                assert r.headers["x-tiergate-fallbacks"] == "smollm2-local"
            r = _ask(g)
            assert r.headers["x-tiergate-model"] == "gpt-4o-mini" and "x-tiergate-fallbacks" not in r.headers
            assert _local(g)["available"] is False and "cooling down" in _local(g)["unavailable_reason"]

            llama = start_llama_server(port, tmp_path / "llama-2.log")  # back, on the same address
            deadline = time.monotonic() + 30
            while not _local(g)["available"]:
                assert time.monotonic() < deadline, "the cooldown did not end"
                time.sleep(0.1)
            r = _ask(g)
            assert r.headers["x-tiergate-model"] == "smollm2-local" and "x-tiergate-fallbacks" not in r.headers
    finally:
        llama.terminate()
        llama.wait(timeout=20)
