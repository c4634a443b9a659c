"""A model's deployments: what each inherits, the order calls take, and which are left out."""

from __future__ import annotations

from typing import Any

from gateway.balancer import Deployments
from router.policy import TiergateConfig
from tests.policies import config_dict


def _config(**local: Any) -> TiergateConfig:
    d = config_dict()
    d["models"][0] = {**d["models"][0], "api_base": "http://a/v1", "api_key_env": "KEY_A", **local}
    return TiergateConfig.model_validate(d)


def test_a_deployment_takes_what_it_leaves_out_from_its_model() -> None:
    cfg = _config(
        deployments=[
            {"api_base": "http://b/v1"},
            {"api_base": "http://c/v1", "api_key_env": None, "litellm_model": "azure/local", "transport": None},
        ]
    )
    own, b, c = cfg.models[0].expanded()
    assert (own.api_base, own.api_key_env, own.deployments) == ("http://a/v1", "KEY_A", [])
    assert (b.api_base, b.api_key_env, b.litellm_model, b.name, b.tier) == (
        "http://b/v1",
        "KEY_A",
        "openai/local",
        "local",
        0,
    )
    assert (c.api_key_env, c.litellm_model, c.transport) == (None, "azure/local", "auto")  # null keeps the model's
    assert b.price == own.price and b.capabilities == own.capabilities


def test_calls_take_the_servers_in_turn_and_pass_over_those_cooling_down() -> None:
    cfg = _config(deployments=[{"api_base": "http://b/v1"}, {"api_base": "http://c/v1"}])
    servers = Deployments(cfg, {"KEY_A": "k"})
    local = cfg.models[0]
    assert servers.keys("local") == ("local#1", "local#2", "local#3")
    firsts = [servers.order(local, frozenset())[0][0] for _ in range(4)]
    assert firsts == ["local#1", "local#2", "local#3", "local#1"]
    assert [k for k, _ in servers.order(local, frozenset())] == ["local#2", "local#3", "local#1"]
    assert [k for k, _ in servers.order(local, frozenset({"local#1"}))] == ["local#3", "local#2"]
    every = frozenset({"local#1", "local#2", "local#3"})
    assert len(servers.order(local, every)) == 3  # the model was chosen all the same: all are tried
    assert servers.cooling_models(frozenset({"local#1", "local#3"})) == frozenset()
    assert servers.cooling_models(every | {"mid"}) == {"local", "mid"}  # `mid` has one server, keyed by its name


def test_servers_without_their_key_are_left_out() -> None:
    cfg = _config(deployments=[{"api_base": "http://b/v1", "api_key_env": "KEY_B"}, {"api_key_env": None}])
    assert Deployments(cfg, {"KEY_B": "k"}).keys("local") == ("local#2", "local#3")
    assert Deployments(cfg, {}).keys("local") == ("local#3",)
    assert Deployments(cfg, {}).keys("mid") == ("mid",)  # one server: its name


def test_calls_go_to_the_least_busy_server_and_a_full_one_last() -> None:
    cfg = _config(
        max_concurrency=2, deployments=[{"api_base": "http://b/v1"}, {"api_base": "http://c/v1", "max_concurrency": 1}]
    )
    servers = Deployments(cfg, {"KEY_A": "k"})
    local, busy = cfg.models[0], servers.inflight
    assert [s.max_concurrency for s in local.expanded()] == [2, 2, 1]  # a deployment inherits the cap or sets its own
    assert servers.capacity("local") == 5  # what /api/models shows against the calls in flight summed over servers
    assert servers.capacity("mid") is None  # no cap
    shared = _config(max_concurrency=2, deployments=[{"api_base": "http://b/v1"}])
    assert Deployments(shared, {"KEY_A": "k"}).capacity("local") == 4
    assert Deployments(shared, {}).capacity("local") is None  # no server has its key
    one_open = _config(deployments=[{"api_base": "http://b/v1", "max_concurrency": 3}])
    assert Deployments(one_open, {"KEY_A": "k"}).capacity("local") is None  # the model's own server has no cap
    held = [busy.try_acquire("local#1"), busy.try_acquire("local#1"), busy.try_acquire("local#2")]
    assert [k for k, _ in servers.order(local, frozenset())] == ["local#3", "local#2", "local#1"]
    held.append(busy.try_acquire("local#3"))  # now #3 is full (cap 1) and #1 full (cap 2): #2 has room
    assert servers.order(local, frozenset())[0][0] == "local#2"
    assert servers.full_models() == frozenset()  # `when_full: wait` (the default): never passed over
    for slot in held:
        assert slot is not None
        slot.release()
    firsts = [servers.order(local, frozenset())[0][0] for _ in range(3)]
    assert sorted(firsts) == ["local#1", "local#2", "local#3"]  # idle: ties go round in turn


def test_a_full_model_that_overflows_is_passed_over_only_when_every_server_is_full() -> None:
    cfg = _config(max_concurrency=1, when_full="overflow", deployments=[{"api_base": "http://b/v1"}])
    servers = Deployments(cfg, {"KEY_A": "k"})
    one = servers.inflight.try_acquire("local#1")
    assert servers.full_models() == frozenset()
    two = servers.inflight.try_acquire("local#2")
    assert servers.full_models() == {"local"}
    assert one is not None and two is not None
    two.release()
    assert servers.full_models() == frozenset()


def test_weights_share_the_turns_and_weighted_balance_ignores_load() -> None:
    cfg = _config(weight=3, deployments=[{"api_base": "http://b/v1", "weight": 1}])
    servers = Deployments(cfg, {"KEY_A": "k"})
    local = cfg.models[0]
    firsts = [servers.order(local, frozenset())[0][0] for _ in range(8)]
    assert firsts == ["local#1", "local#1", "local#2", "local#1"] * 2  # 3:1, spread out
    held = servers.inflight.try_acquire("local#1")
    assert servers.order(local, frozenset())[0][0] == "local#2"  # least busy (the default) beats the turn

    canary = _config(
        weight=9, balance="weighted", max_concurrency=5, deployments=[{"api_base": "http://b/v1", "weight": 1}]
    )
    servers = Deployments(canary, {"KEY_A": "k"})
    model = canary.models[0]
    held = servers.inflight.try_acquire("local#1")  # busy, but not full: weighted keeps to its turns
    firsts = [servers.order(model, frozenset())[0][0] for _ in range(100)]
    assert (firsts.count("local#1"), firsts.count("local#2")) == (90, 10)
    assert held is not None
    for _ in range(4):
        servers.inflight.try_acquire("local#1")
    assert [servers.order(model, frozenset())[0][0] for _ in range(3)] == ["local#2"] * 3  # a full one goes last
