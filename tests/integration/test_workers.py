"""`tiergate serve --workers 2`: two worker processes answer, both write one ledger without losing a record, and
whichever answers a /metrics scrape counts both workers' requests; an edited policy file reaches both."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.server import wait_http
from tests.fakes.upstream import FakeUpstream, free_port


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_two_workers_share_one_ledger(tmp_path: Path, log_format: str) -> None:
    up = FakeUpstream().start()
    cfg = {
        "models": [
            {
                "name": "m",
                "litellm_model": "openai/m",
                "api_base": up.base_url,
                "tier": 0,
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
            }
        ],
        "policies": {"default": {"thresholds": [0.5], "baseline_model": "m"}},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    env = {
        **os.environ,
        "TIERGATE_LEDGER_PATH": str(tmp_path / "l.sqlite3"),
        "TIERGATE_ENCODER": "onnx",
        "TIERGATE_LOG_FORMAT": log_format,
        "TIERGATE_REQUEST_LOG": "true",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(tmp_path / "cfg.yaml"),
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 180, proc, log)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, children

        def ask(i: int) -> str:
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                timeout=60,
                json={"model": "auto", "messages": [{"role": "user", "content": f"question {i}"}]},
            )
            assert r.status_code == 200, r.text
            return r.headers["x-request-id"]

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(ask, range(60)))
        assert len(set(ids)) == 60

        def answered(text: str) -> float:
            return sum(
                s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "tiergate_requests_total" and s.labels["status"] == "200"
            )

        # New connections, so the scrapes land on either worker: every one must count all 60 once each worker has
        # published its snapshot (every second; polled, so a slow machine only waits longer).
        deadline = time.monotonic() + 30
        while True:
            counts = [answered(httpx.get(f"http://127.0.0.1:{port}/metrics").text) for _ in range(8)]
            if counts == [60.0] * 8 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert counts == [60.0] * 8

        # An edited policy file reaches both workers without a restart (gateway/reload.py).
        cfg["policies"]["second"] = {"thresholds": [0.9], "baseline_model": "m"}
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        deadline = time.monotonic() + 30
        while True:
            listed = ["second" in httpx.get(f"http://127.0.0.1:{port}/v1/models").text for _ in range(8)]
            if all(listed) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert all(listed), listed
        assert log.read_text().count("policy file") == 2, log.read_text()  # "... reloaded", once per worker
        if log_format == "json":  # every line so far, uvicorn's and Tiergate's, from the supervisor and both workers
            lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            assert all(set(x) >= {"ts", "level", "logger", "message", "pid"} for x in lines)
            assert {x["logger"] for x in lines} >= {"uvicorn.error", "tiergate.reload"}
            assert len({x["pid"] for x in lines if x["logger"] == "tiergate.reload"}) == 2
            # TIERGATE_REQUEST_LOG: one line per request, from whichever worker served it, with its fields
            served = {x["request"]["request_id"]: x["request"] for x in lines if x["logger"] == "tiergate.requests"}
            assert set(served) == set(ids) and {r["routed_model"] for r in served.values()} == {"m"}
            assert all(r["status"] == 200 and r["cost_usd"] > 0 and "prompt" not in r for r in served.values())
        else:
            text = log.read_text()
            assert all(f"tiergate.requests: {i} chat.completions default auto -> m 200" in text for i in ids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        up.stop()
    with sqlite3.connect(tmp_path / "l.sqlite3") as c:
        got = {r[0] for r in c.execute("SELECT request_id FROM requests WHERE status = 200")}
    assert got >= set(ids)  # both workers' records, all committed by the clean shutdown


def test_a_cooldown_one_worker_begins_reaches_the_other(tmp_path: Path) -> None:
    up = FakeUpstream().start()
    up.script("down", status=503)

    def model(name: str, price: float) -> dict[str, object]:
        return {
            "name": name,
            "litellm_model": f"openai/{name}",
            "api_base": up.base_url,
            "tier": 0,
            "price": {"input_per_mtok": price, "output_per_mtok": price},
        }

    cfg = {
        "models": [model("down", 0.5), model("m", 1.0)],  # `down` is the cheaper: tried first
        "policies": {"default": {"thresholds": [0.5], "baseline_model": "m"}},
        "cooldown": {"failures": 1, "window_s": 60, "cooldown_s": 600},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    env = {**os.environ, "TIERGATE_LEDGER_PATH": str(tmp_path / "l.sqlite3"), "TIERGATE_LOG_FORMAT": "json"}
    log = tmp_path / "serve.log"
    with log.open("wb") as f:
        args = ["serve", "--config", str(tmp_path / "cfg.yaml"), "--port", str(port), "--workers", "2"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args], stdout=f, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 180, proc, log)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
        r = httpx.post(url, json=body, timeout=60)
        assert (r.headers["x-tiergate-model"], r.headers["x-tiergate-fallbacks"]) == ("m", "down")

        def cooling_lines() -> list[dict[str, object]]:
            lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
            return [x for x in lines if x["logger"] == "tiergate.cooldown" and "cooling down" in str(x["message"])]

        deadline = time.monotonic() + 30  # the other worker takes it up at its next exchange (every second)
        while len(cooling_lines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        began, adopted = cooling_lines()
        assert "as another worker found" in str(adopted["message"]) and began["pid"] != adopted["pid"]
        for _ in range(20):  # new connections, so both workers answer: neither tries `down` again
            r = httpx.post(url, json=body, timeout=60)
            assert r.headers["x-tiergate-model"] == "m" and "x-tiergate-fallbacks" not in r.headers
        assert up.calls_for("down") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        up.stop()
