"""Nothing lost: PostgreSQL (our own instance) crashes under load and comes back; every request the gateway
answered has exactly one ledger record, and the gateway answered every request meanwhile."""

from __future__ import annotations

import threading
import time

import httpx
import openai

from tests.conftest import GatewayFactory, api_config
from tests.fakes.postgres import OwnPostgres
from tests.fakes.upstream import FakeUpstream


def test_postgres_outage_under_load_loses_no_record(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, own_postgres: OwnPostgres
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), ledger_url=own_postgres.url)
    stop = threading.Event()
    ids: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def load(worker: int) -> None:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=f"sk-{worker}", max_retries=0)
        i = 0
        while not stop.is_set():
            i += 1
            model = "auto" if i % 3 else "mid"
            try:
                r = client.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": f"w{worker} n{i}"}], stream=i % 5 == 0
                )
                if i % 5 == 0:
                    for _ in r.parse():
                        pass
                with lock:
                    ids.append(r.headers["x-request-id"])
            except openai.OpenAIError as e:
                with lock:
                    failures.append(repr(e))

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    before = len(ids)
    own_postgres.stop("immediate")  # a crash: no clean shutdown, connections cut
    seen_spooling = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        st = svc.ledger.status()
        if st["state"] == "spooling" and st["spooled"] > 0:
            seen_spooling = max(seen_spooling, st["spooled"])
        time.sleep(0.1)
    during = len(ids) - before
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"  # serving, records spooled
    assert ready.json()["checks"]["ledger"]["state"] == "spooling"
    own_postgres.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()

    assert failures == []  # the gateway kept answering through the outage
    assert during > 20 and seen_spooling > 0, (during, seen_spooling)
    deadline = time.monotonic() + 30
    while not svc.ledger.settled():
        assert time.monotonic() < deadline, svc.ledger.status()
        time.sleep(0.1)
    rows = svc.ledger.rows()
    assert len(rows) == len(ids) and sorted(r["request_id"] for r in rows) == sorted(ids)
    assert all(r["status"] == 200 and r["routed_model"] for r in rows)
    print(f"{len(ids)} requests, {during} during the outage, up to {seen_spooling} spooled; all recorded")
