"""The fake upstream keeps what it received only when asked: benchmarks run it for hundreds of thousands of
requests, and a list growing by each one made its garbage-collection pauses the gateways' tail latency."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize("keep", [True, False])
def test_received_is_kept_only_when_asked(keep: bool) -> None:
    up = FakeUpstream(keep_received=keep).start()
    try:
        for _ in range(3):
            r = httpx.post(f"{up.base_url}/chat/completions", json=BODY, timeout=10)
            assert r.json()["choices"][0]["message"]["content"] == "echo: hello"
        assert len(up.received) == (3 if keep else 0)
    finally:
        up.stop()
