"""Identical cacheable requests in flight at once (gateway/flights.py), through the openai SDK: one upstream call,
every caller answered and on the record; a leader without an answer leaves each follower its own call; streams are
never held for another call."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import openai

from gateway.cache import MemoryStore
from tests.conftest import GatewayFactory, api_config, sdk, until
from tests.fakes.upstream import FakeUpstream

Q = [{"role": "user", "content": "what is the capital of peru"}]


def _ask(client: openai.OpenAI, ids: list[str] | None = None) -> tuple[int, str, str]:
    """(status, x-tiergate-cache, content) of one deterministic request for `mid`; its answer's id into `ids`."""
    try:
        r = client.chat.completions.with_raw_response.create(model="mid", messages=Q, temperature=0)
    except openai.APIStatusError as e:
        return e.status_code, e.response.headers.get("x-tiergate-cache", ""), ""
    answer = r.parse()
    if ids is not None:
        ids.append(answer.id)
    return r.status_code, r.headers["x-tiergate-cache"], str(answer.choices[0].message.content)


def test_identical_calls_in_flight_share_one_upstream_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    hold = threading.Event()  # the first answer waits until every copy of the request has arrived
    fresh_upstream.script("mid", hold=hold)
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    client = sdk(server.url)
    ids: list[str] = []
    with ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(_ask, client, ids) for _ in range(4)]
        until(lambda: svc.activity.active == 4, "four identical requests in progress")
        assert fresh_upstream.calls_for("mid") == 1  # the other three wait for it
        hold.set()
        got = [a.result() for a in answers]
    assert fresh_upstream.calls_for("mid") == 1
    assert sorted(cache for _, cache, _ in got) == ["hit", "hit", "hit", "miss"]
    assert {(status, content) for status, _, content in got} == {(200, "echo: what is the capital of peru")}
    assert len(set(ids)) == 4  # one answer shared, each with its own id, as cache hits have
    rows = svc.ledger.rows()
    assert sorted(r["cache"] for r in rows) == ["hit", "hit", "hit", "miss"]  # every caller is on the record
    (miss,) = [r for r in rows if r["cache"] == "miss"]
    for hit in (r for r in rows if r["cache"] == "hit"):
        assert (hit["cost_usd"], hit["routed_model"]) == (0.0, "mid")
        assert hit["saved_usd"] == miss["cost_usd"] > 0  # what the shared answer saved each of them


def test_a_leader_without_an_answer_leaves_each_follower_its_own_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    hold = threading.Event()
    fresh_upstream.script("mid", status=400, fail_times=1, hold=hold)  # the first call fails, later ones answer
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    client = sdk(server.url)
    with ThreadPoolExecutor(3) as pool:
        answers = [pool.submit(_ask, client) for _ in range(3)]
        until(lambda: svc.activity.active == 3, "three identical requests in progress")
        hold.set()
        got = sorted(a.result() for a in answers)
    assert [status for status, _, _ in got] == [200, 200, 400]  # the leader's failure is its own, not theirs
    assert fresh_upstream.calls_for("mid") == 3
    assert sorted(r["status"] for r in svc.ledger.rows()) == [200, 200, 400]


def test_streams_are_not_held_for_another_call(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    hold = threading.Event()
    fresh_upstream.script("mid", hold=hold)
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    client = sdk(server.url)

    def read(stream: bool) -> str:
        if not stream:
            return _ask(client)[2]
        chunks = client.chat.completions.create(model="mid", messages=Q, temperature=0, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with ThreadPoolExecutor(3) as pool:
        whole = pool.submit(read, False)
        until(lambda: fresh_upstream.calls_for("mid") == 1, "the whole answer's call upstream")
        streams = [pool.submit(read, True) for _ in range(2)]
        until(lambda: fresh_upstream.calls_for("mid") == 3, "each stream making its own call")
        hold.set()
        assert {whole.result(), *(s.result() for s in streams)} == {"echo: what is the capital of peru"}
    assert len(svc.ledger.rows()) == 3


def test_a_request_refused_before_its_call_leaves_no_flight_behind(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """Refused after the cache missed (here: its model's budget is spent), a request makes no call: identical ones
    after it must not wait for one. A flight opened before that refusal was never landed, and held them for ever."""
    cfg = api_config(fresh_upstream.base_url)
    cfg["models"][3]["budget"] = {"usd": 1e-6, "per": "1h"}  # one answer of a few words spends it
    server, _ = gateway_factory(cfg, store=MemoryStore(100))
    client = sdk(server.url).with_options(timeout=20)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "spend it"}])
    for _ in range(2):  # the second would wait for the first's flight until the client gave up
        try:
            client.chat.completions.create(model="gpt-4o", messages=Q, temperature=0)
        except openai.RateLimitError as e:
            assert e.code == "insufficient_quota"
        else:
            raise AssertionError("a spent budget answered")
    assert fresh_upstream.calls_for("gpt-4o") == 1


def test_a_follower_whose_client_leaves_is_a_499_and_the_leader_answers(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    hold = threading.Event()
    fresh_upstream.script("mid", hold=hold)
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), store=MemoryStore(100))
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(_ask, sdk(server.url))
        until(lambda: fresh_upstream.calls_for("mid") == 1, "the leader's call upstream")
        impatient = sdk(server.url).with_options(timeout=1.0)
        follower = pool.submit(impatient.chat.completions.create, model="mid", messages=Q, temperature=0)
        try:
            follower.result()
        except openai.APITimeoutError:
            pass  # it gave up while the leader's answer was held, and closed its connection
        else:
            raise AssertionError("the follower was answered while the leader's answer was held")
        until(lambda: len(svc.ledger.rows()) == 1, "the follower on the record")
        hold.set()
        assert leader.result()[:2] == (200, "miss")
    rows = svc.ledger.rows()
    assert sorted((r["status"], r["error_type"]) for r in rows) == [(200, None), (499, "client_closed")]
    assert fresh_upstream.calls_for("mid") == 1


def test_a_degraded_answer_is_not_handed_to_the_followers(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    hold = threading.Event()
    fresh_upstream.script("gpt-4o", status=500, fail_times=1, hold=hold)  # the leader's call fails, later ones answer
    cfg = {**api_config(fresh_upstream.base_url), "cooldown": {"failures": 0}}
    server, svc = gateway_factory(cfg, store=MemoryStore(100))
    client = sdk(server.url)
    hard = [{"role": "user", "content": "prove it [score=0.9]"}]  # tier 2: gpt-4o, then best effort's flaky

    def ask() -> tuple[str, str, str]:
        r = client.chat.completions.with_raw_response.create(model="auto", messages=hard, temperature=0)
        return r.headers["x-tiergate-model"], r.headers["x-tiergate-cache"], r.headers.get("x-tiergate-degraded", "")

    with ThreadPoolExecutor(3) as pool:
        answers = [pool.submit(ask) for _ in range(3)]
        until(lambda: svc.activity.active == 3, "three identical requests in progress")
        hold.set()
        got = sorted(a.result() for a in answers)
    # The leader's stand-in answer stays its own; the followers are answered by the model they needed.
    assert got == [("flaky", "miss", "true"), ("gpt-4o", "miss", ""), ("gpt-4o", "miss", "")]
    assert fresh_upstream.calls_for("gpt-4o") == 3
