"""A client that leaves while still sending its body was never a request: on every POST endpoint it gets no ledger
record (a 500 there would count as the gateway's failure on the dashboard and in alerts) and no error in the log,
and the gateway goes on serving. Found by a chaos soak (embeddings logged a traceback and recorded a 500)."""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import GatewayFactory, api_config, until
from tests.fakes.server import RunningServer
from tests.fakes.upstream import FakeUpstream

PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/feedback", "/api/route"]


def _leave_mid_body(server: RunningServer, path: str) -> None:
    """Sends the head and half the promised body, closes, and waits until the gateway has finished with it."""
    u = urlparse(server.url)
    with socket.create_connection((u.hostname, u.port)) as s:
        head = f"POST {path} HTTP/1.1\r\nhost: {u.netloc}\r\ncontent-type: application/json\r\ncontent-length: 64\r\n"
        s.sendall(f"{head}\r\n".encode() + b'{"model": "all-minilm-l6-v2", ')
        until(lambda: len(server.server.server_state.tasks) == 1, "the gateway to start on the request")
    until(lambda: not server.server.server_state.tasks, "the gateway to finish with the request")


@pytest.mark.parametrize("path", PATHS)
def test_a_client_gone_before_its_body_arrived_leaves_no_record_and_no_error(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    with caplog.at_level(logging.ERROR):
        _leave_mid_body(server, path)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert svc.ledger.rows() == []
    ok = httpx.post(f"{server.url}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "still here"})
    assert ok.status_code == 200
    assert [r["status"] for r in svc.ledger.rows()] == [200]
