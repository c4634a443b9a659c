"""POST /v1/feedback through a running gateway, then `tiergate export-labels` and the training labeller on its file:
a judgement given to an answer becomes a training label for the model that answered, on both ledger backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from classifiers.labels import examples
from tests.conftest import GatewayFactory, api_config
from tests.fakes.upstream import FakeUpstream, free_port

AN_ID = "tg-" + "0" * 32  # well formed; no request has it


def _ask(url: str, text: str) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
    r = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": text}])
    return r.headers["x-request-id"]


def test_judgements_are_stored_exported_and_become_labels(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, ledger_url: str, tmp_path: Path
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["policies"]["default"]["record_prompts"] = True
    server, svc = gateway_factory(cfg, ledger_url=ledger_url)
    easy, hard, unjudged = _ask(server.url, "hi"), _ask(server.url, "prove it [score=0.9]"), _ask(server.url, "x")
    post = lambda body: httpx.post(f"{server.url}/v1/feedback", json=body, headers={"Authorization": "Bearer k"})  # noqa: E731
    first = post({"request_id": easy, "score": 1.0})
    assert first.status_code == 201 and first.json()["request_id"] == easy
    assert post({"request_id": easy, "score": 0.0}).status_code == 201  # changed its mind: the latest counts
    assert post({"request_id": hard, "score": 1.0}).status_code == 201
    for bad, param in [({"request_id": easy, "score": 1.5}, "score"), ({"request_id": "", "score": 1}, "request_id")]:
        r = post(bad)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    svc.ledger.flush()

    out = tmp_path / "labels.jsonl"
    env = {**os.environ, "TIERGATE_LEDGER_PATH": "unused"}
    cmd = [sys.executable, "-m", "gateway.cli", "export-labels", "--ledger", ledger_url, "--out", str(out)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {f"tiergate/{easy}", f"tiergate/{hard}"}  # the unjudged request is not a label
    assert rows[f"tiergate/{easy}"]["scores"] == {"local-small": 0.0}
    assert rows[f"tiergate/{easy}"]["prompt"] == "hi" and rows[f"tiergate/{easy}"]["category"] == "default"
    assert rows[f"tiergate/{hard}"]["scores"] == {"gpt-4o": 1.0}
    # Training on it with the local model as the weak side: only what that model answered is a label, and a bad
    # judgement of its answer reads "the cheap tier was not enough".
    (ex,) = examples(list(rows.values()), weak="local-small")
    assert (ex.text, ex.weak_fail, ex.label) == ("hi", 1, 1)
    assert unjudged not in {r["id"] for r in rows.values()}


def test_a_judgement_the_ledger_cannot_store_is_refused_not_dropped(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/test"  # nothing listens there
    server, _ = gateway_factory(api_config(fresh_upstream.base_url), ledger_url=down)
    r = httpx.post(f"{server.url}/v1/feedback", json={"request_id": AN_ID, "score": 1})
    assert r.status_code == 503 and r.json()["error"]["code"] == "ledger_unavailable"


def test_a_judgement_must_be_a_number_in_range(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    url = f"{server.url}/v1/feedback"
    for bad in (True, False, "1", 1.5, -0.1, None):
        r = httpx.post(url, json={"request_id": AN_ID, "score": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "score", bad
    for good in (0, 1, 0.25):
        assert httpx.post(url, json={"request_id": AN_ID, "score": good}).status_code == 201, good


def test_a_judgement_of_an_id_the_gateway_never_gives_is_refused_not_kept(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """The answer body's `id` is the model server's (chatcmpl-..., resp_...): feedback keyed by it could never be
    joined to its request, so storing it would lose the label in silence. The error says which id to send."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
    answer = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    for wrong in (answer.id, "tg-1", "TG-" + "0" * 32, "tg-" + "0" * 33, "nope"):
        r = httpx.post(f"{server.url}/v1/feedback", json={"request_id": wrong, "score": 1})
        err = r.json()["error"]
        assert r.status_code == 400 and err["param"] == "request_id" and "x-request-id" in err["message"], wrong
    assert svc.ledger.reader.query("SELECT count(*) FROM feedback") == [(0,)]
