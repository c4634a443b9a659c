"""`tiergate serve` on SIGTERM (TIERGATE_SHUTDOWN_GRACE_S): requests still in flight when the grace runs out are
cancelled and recorded, the ledger is drained and the process exits, so an orchestrator's SIGKILL (docker stop's
10 s, Kubernetes' 30 s) finds nothing left to lose. Without a bound, uvicorn waits for every request, however long
its upstream takes, and the SIGKILL would take the unwritten records with it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import until
from tests.fakes.server import wait_http
from tests.fakes.upstream import FakeUpstream, free_port


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_records_what_outlasts_the_grace_and_exits(tmp_path: Path, workers: str) -> None:
    hold = threading.Event()  # the upstream answers nothing (a stream: nothing past its first word) until set
    up = FakeUpstream().start()
    up.script("m", hold=hold)
    model = {"name": "m", "litellm_model": "openai/m", "api_base": up.base_url, "tier": 0}
    cfg = {"models": [{**model, "price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}}]}
    cfg["policies"] = {"default": {"thresholds": [0.5], "baseline_model": "m"}}
    cfg["embedding_models"] = [{"name": "e", "litellm_model": "openai/e", "api_base": up.base_url}]
    up.script("e", hold=hold)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    port, ledger = free_port(), tmp_path / "l.sqlite3"
    env = {**os.environ, "TIERGATE_LEDGER_PATH": str(ledger), "TIERGATE_SHUTDOWN_GRACE_S": "1"}
    log = tmp_path / "serve.log"
    args = ["serve", "--config", str(tmp_path / "cfg.yaml"), "--port", str(port), "--workers", workers]
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args], stdout=f, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    seen: dict[str, Any] = {}

    def whole() -> None:
        try:
            seen["whole"] = httpx.post(
                url, json={"model": "m", "messages": [{"role": "user", "content": "a b"}]}
            ).status_code
        except httpx.HTTPError as e:
            seen["whole"] = type(e).__name__

    def embedded() -> None:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"model": "e", "input": "x y"}, timeout=120)
        seen["embeddings"] = r.status_code

    def streamed() -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": "one two three"}], "stream": True}
        got: list[str] = []
        try:
            with httpx.stream("POST", url, json=body, timeout=120) as r:
                got.extend(r.iter_text())
            seen["stream"] = ("whole", "".join(got))
        except httpx.HTTPError as e:
            seen["stream"] = (type(e).__name__, "".join(got))

    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 180, proc, log)
        clients = [threading.Thread(target=f) for f in (whole, streamed, embedded)]
        for c in clients:
            c.start()
        until(lambda: up.calls_for("m") == 2 and up.calls_for("e") == 1, "the three calls at the upstream")
        proc.send_signal(signal.SIGTERM)
        # A deadline, not a timing: without the bound, the process waits for the held answers (the fake holds them
        # for 60 s at most), so it would still be running here.
        proc.wait(timeout=30)
    finally:
        hold.set()
        if proc.poll() is None:
            proc.kill()
        up.stop()
    for c in clients:
        c.join(timeout=30)
    text = log.read_text()
    assert proc.returncode in (0, -signal.SIGTERM), text[-3000:]  # uvicorn re-raises the signal it stopped on
    assert "timeout graceful shutdown exceeded" in text and "Traceback" not in text, text[-3000:]
    with sqlite3.connect(ledger) as c:
        chat = "SELECT stream, status, error_type, routed_model, prompt_tokens FROM requests WHERE endpoint = ?"
        rows = c.execute(chat, ("chat.completions",)).fetchall()
        (embedding,) = c.execute(
            "SELECT status, error_type, requested_model FROM requests WHERE endpoint = 'embeddings'"
        )
    assert embedding == (503, "server_stopping", "e") and seen["embeddings"] == 503
    # The whole answer not begun: a 503 the client may retry elsewhere. The stream, begun: cut, and on record as cut
    # by the server, not by its client. Both book the prompt sent to the model, estimated.
    assert sorted(r[:4] for r in rows) == [(0, 503, "server_stopping", "m"), (1, 503, "server_stopping", "m")], rows
    assert all(r[4] > 0 for r in rows), rows
    assert seen["whole"] == 503
    assert seen["stream"][0] == "RemoteProtocolError" and "echo:" in seen["stream"][1]  # cut short, and it shows
