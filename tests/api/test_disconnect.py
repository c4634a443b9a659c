"""A client that leaves before its answer begins cancels the upstream call (gateway/disconnect.py): the server's
slot is free at once for the next request, and the record says 499 with the prompt the model was sent, estimated.
Real sockets to a real gateway, on both transports; the upstream is the fake one on loopback."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import GatewayFactory, api_config, model_now, sdk, until
from tests.fakes.upstream import FakeUpstream

EASY = [{"role": "user", "content": "easy [score=0.1] tell me a long story about the sea"}]


def _send_and_leave(url: str, body: dict[str, Any], until_one: str) -> None:
    """What a client with a short timeout does: sends the whole request, then closes its connection once the
    gateway has it at the local model, `in_flight` (its upstream call) or `waiting` (for a slot)."""
    u = urlparse(url)
    raw = json.dumps(body).encode()
    with socket.create_connection((u.hostname, u.port)) as s:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: {u.netloc}\r\ncontent-type: application/json\r\n"
        s.sendall(f"{head}content-length: {len(raw)}\r\n\r\n".encode() + raw)
        until(lambda: model_now(url)[until_one] == 1, f"the call {until_one}")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream-before-first-chunk"])
@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_client_that_leaves_cancels_its_upstream_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, transport: str, stream: bool
) -> None:
    hold = threading.Event()
    # Held (a whole answer) or late (a stream's first chunk): either way, the answer has not begun when it leaves.
    fresh_upstream.script("local-small", **({"delay_s": 10.0} if stream else {"hold": hold}))
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][0] = {**cfg["models"][0], "max_concurrency": 1, "transport": transport}
    server, svc = gateway_factory(cfg)
    try:
        body = {"model": "auto", "messages": EASY, "stream": stream}
        _send_and_leave(server.url, body, "in_flight")
        # Its slot is free long before the upstream would have answered (hold is never set until the end).
        until(lambda: model_now(server.url)["in_flight"] == 0, "the slot freed when the client left")
        (row,) = svc.ledger.rows()
        assert (row["status"], row["error_type"], row["routed_model"]) == (499, "client_closed", "local-small")
        assert row["prompt_tokens"] > 0 and row["usage_estimated"] and row["completion_tokens"] == 0
        fresh_upstream.script("local-small")  # answers at once now
        r = sdk(server.url).chat.completions.with_raw_response.create(model="auto", messages=EASY)
        assert r.headers["x-tiergate-model"] == "local-small"  # not kept waiting for the abandoned call's slot
    finally:
        hold.set()


def test_a_client_that_stays_gets_its_answer_and_one_record(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """The watch ends with the answer: the connection is reused for a second request, and nothing is cancelled."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    with httpx.Client(base_url=server.url) as c:
        for _ in range(2):
            r = c.post("/v1/chat/completions", json={"model": "auto", "messages": EASY})
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert [row["status"] for row in svc.ledger.rows()] == [200, 200]


def test_a_client_that_leaves_while_waiting_its_turn_gives_up_its_place(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """Past `max_concurrency` a call waits for a slot; its client leaving takes it out of the queue, and no model
    was called for it, so its 499 names none and costs nothing."""
    hold = threading.Event()
    fresh_upstream.script("local-small", hold=hold)
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][0] = {**cfg["models"][0], "max_concurrency": 1}
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)
    try:
        first = threading.Thread(target=client.chat.completions.create, kwargs={"model": "auto", "messages": EASY})
        first.start()
        until(lambda: model_now(server.url)["in_flight"] == 1, "the first call in flight")
        body = {"model": "auto", "messages": EASY}
        _send_and_leave(server.url, body, "waiting")
        until(lambda: model_now(server.url)["waiting"] == 0, "its place given up when its client left")
        assert model_now(server.url)["in_flight"] == 1  # the first call is untouched
        (row,) = svc.ledger.rows()
        assert (row["status"], row["routed_model"], row["prompt_tokens"], row["cost_usd"]) == (499, None, 0, 0.0)
        hold.set()
        first.join()
        assert [r["status"] for r in svc.ledger.rows()] == [499, 200]
        assert fresh_upstream.calls_for("local-small") == 1
    finally:
        hold.set()
