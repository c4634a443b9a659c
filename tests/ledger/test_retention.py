"""Ledger retention on both backends: old records go in batches, judged ones and those inside a key's budget window
stay; `tiergate prune-ledger` and the gateway's own periodic pruning."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from gateway.ledger import LedgerRecord, open_ledger
from gateway.ledger.backends import make_backend
from gateway.ledger.retention import count_old, cutoff, prune
from gateway.settings import PACKAGE_ROOT
from router.policy import TiergateConfig
from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream
from tests.policies import config_dict

DAY = 86400.0
NOW = time.time()


def _seed(url: str, ages_days: list[float], judged: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    ledger = open_ledger(url)
    for i, age in enumerate(ages_days):
        ledger.record(LedgerRecord(ts=NOW - age * DAY, request_id=f"r{i}", policy="p", requested_model="auto"))
    ledger.flush()
    for i in judged:
        ledger.add_feedback(f"r{i}", 1.0, None)
    ledger.close()


def _left(url: str) -> list[str]:
    db = make_backend(url)
    try:
        return [r[0] for r in db.query("SELECT request_id FROM requests ORDER BY id")]
    finally:
        db.close()


def _config(**key: Any) -> TiergateConfig:
    d = config_dict()
    d["keys"] = [{"name": "app", "sha256": "0" * 64, **key}]
    return TiergateConfig.model_validate(d)


def test_old_records_go_in_batches_and_judged_ones_stay(ledger_url: str) -> None:
    _seed(ledger_url, [400, 200, 100, 95, 89, 10, 0], judged={1})
    db = make_backend(ledger_url)
    try:
        before = cutoff(NOW, 90 * DAY, None)
        assert count_old(db, before) == 3  # r0, r2, r3 (r1 was judged)
        assert prune(db, before, batch=2) == 3  # two batches: one full, one short
        assert prune(db, before) == 0
    finally:
        db.close()
    assert _left(ledger_url) == ["r1", "r4", "r5", "r6"]
    ledger = open_ledger(ledger_url)  # the gateway goes on writing to it
    ledger.record(LedgerRecord(ts=NOW, request_id="new", policy="p", requested_model="auto"))
    ledger.close()
    assert _left(ledger_url)[-1] == "new"


def test_a_budget_window_is_kept_whatever_the_retention() -> None:
    assert cutoff(NOW, 7 * DAY, _config()) == NOW - 7 * DAY
    assert cutoff(NOW, 7 * DAY, _config(budget={"usd": 5, "per": "30d"})) == NOW - 30 * DAY
    assert cutoff(NOW, 90 * DAY, _config(budget={"usd": 5, "per": "30d"})) == NOW - 90 * DAY
    d = config_dict()
    d["models"][3]["budget"] = {"usd": 100, "per": "45d"}  # a model's budget is counted from the ledger too
    assert cutoff(NOW, 7 * DAY, TiergateConfig.model_validate(d)) == NOW - 45 * DAY


def test_prune_ledger_command(tmp_path: Path) -> None:
    url = str(tmp_path / "l.sqlite3")
    _seed(url, [40, 20, 1])
    cfg = tmp_path / "t.yaml"
    d = config_dict()
    d["keys"] = [{"name": "app", "sha256": "0" * 64, "budget": {"usd": 5, "per": "30d"}}]
    cfg.write_text(yaml.safe_dump(d))
    cmd = [sys.executable, "-m", "gateway.cli", "prune-ledger", "--ledger", url, "--config", str(cfg)]
    dry = subprocess.run([*cmd, "--older-than", "7d", "--dry-run"], capture_output=True, text=True, cwd=PACKAGE_ROOT)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 1 request records from before")  # r1 is inside the 30d budget
    assert _left(url) == ["r0", "r1", "r2"]
    done = subprocess.run([*cmd, "--older-than", "7d"], capture_output=True, text=True, cwd=PACKAGE_ROOT)
    assert done.returncode == 0 and done.stdout.startswith("deleted 1 ")
    assert _left(url) == ["r1", "r2"]
    bad = subprocess.run([*cmd, "--older-than", "7 days"], capture_output=True, text=True, cwd=PACKAGE_ROOT)
    assert bad.returncode == 2 and "expected a duration" in bad.stderr


def test_the_gateway_prunes_by_itself_and_keeps_serving(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = str(tmp_path / "kept.sqlite3")
    _seed(url, [120, 60, 5])
    server, svc = gateway_factory(
        api_config(fresh_upstream.base_url), ledger_url=url, ledger_retention="30d", ledger_prune_every_s=0.05
    )
    deadline = time.monotonic() + 10
    while _left(url) != ["r2"]:
        assert time.monotonic() < deadline, _left(url)
        time.sleep(0.02)
    r = sdk(server.url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert [row["request_id"] for row in svc.ledger.rows()] == ["r2", r.headers["x-request-id"]]
