"""The semantic layer through the SDK, with a bag-of-words encoder at the seam (paraphrases by word overlap)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import openai

from gateway.app import rewire
from gateway.cache import MemoryStore
from gateway.response_cache import ChatCache
from router.policy import TiergateConfig
from tests.conftest import GatewayFactory, api_config, cache_settled
from tests.fakes.upstream import FakeUpstream

EMBEDDED: list[str] = []


async def bow(text: str) -> np.ndarray:
    EMBEDDED.append(text)
    v = np.zeros(64, dtype=np.float32)
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        v[int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
    return v / max(float(np.linalg.norm(v)), 1e-9)


def test_paraphrase_hits_near_miss_and_other_scope_do_not(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["policies"]["default"]["cache"] = {"semantic": {"enabled": True, "threshold": 0.85}}
    server, svc = gateway_factory(cfg, store=MemoryStore(1000))
    svc.pipeline.cache = ChatCache(MemoryStore(1000), TiergateConfig.model_validate(cfg), bow, dim=64)
    c = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)

    def ask(text: str, system: str | None = None) -> openai.types.chat.ChatCompletion:
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return c.chat.completions.with_raw_response.create(model="mid", messages=msgs, temperature=0)  # type: ignore[arg-type,return-value]

    ask("please tell me the capital city of Austria")
    cache_settled(svc)
    para = ask("tell me the capital city of Austria please")
    assert para.headers["x-tiergate-cache"] == "hit"  # type: ignore[attr-defined]
    assert para.headers["x-tiergate-cache-match"].startswith("semantic ")  # type: ignore[attr-defined]
    assert para.parse().choices[0].message.content == "echo: please tell me the capital city of Austria"  # type: ignore[attr-defined]
    near = ask("please tell me the capital city of Australia")  # cosine high, but a different name: the guard says no
    assert near.headers["x-tiergate-cache"] == "miss"  # type: ignore[attr-defined]
    other_scope = ask("tell me the capital city of Austria please", system="answer in French")
    assert other_scope.headers["x-tiergate-cache"] == "miss"  # type: ignore[attr-defined]
    assert fresh_upstream.calls_for("mid") == 3
    # Each distinct text is embedded once: a miss's lookup and its indexing share the vector.
    assert sorted(EMBEDDED) == sorted(set(EMBEDDED)) and len(EMBEDDED) == 3, EMBEDDED

    # A reloaded policy file that leaves this policy as it was keeps its semantic index (gateway/app.py: rewire).
    frugal = {"thresholds": [0.9, 0.95], "baseline_model": "gpt-4o"}
    rewire(svc, TiergateConfig.model_validate({**cfg, "policies": {**cfg["policies"], "frugal": frugal}}))
    after = ask("tell me please the capital city of Austria")
    assert after.headers["x-tiergate-cache-match"].startswith("semantic ")  # type: ignore[attr-defined]
    # One that changes it starts it afresh: answers given under the old policy are not the new one's.
    changed = {**cfg["policies"]["default"], "thresholds": [0.3, 0.7]}
    rewire(svc, TiergateConfig.model_validate({**cfg, "policies": {"default": changed}}))
    assert ask("tell me please the capital city of Austria").headers["x-tiergate-cache"] == "miss"  # type: ignore[attr-defined]
    assert fresh_upstream.calls_for("mid") == 4
