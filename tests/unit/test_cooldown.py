"""Cooldowns on a fake clock: what counts as a failure, when a model cools down, and how it comes back."""

from __future__ import annotations

from gateway.cooldown import Cooldowns
from gateway.provider import UpstreamError, retry_after_seconds, upstream_error
from router.policy import Cooldown


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _cooldowns(**kw: float) -> tuple[Cooldowns, Clock]:
    clock = Clock()
    return Cooldowns(Cooldown.model_validate({"failures": 3, "window_s": 60, "cooldown_s": 30, **kw}), clock), clock


def down(model: str = "a", status: int = 503) -> UpstreamError:
    return upstream_error(model, status, "down")


def test_cools_down_after_failures_within_the_window_and_comes_back_after_the_cooldown() -> None:
    cd, clock = _cooldowns()
    cd.failed(down())
    cd.failed(down())
    assert cd.cooling() == frozenset()
    cd.failed(down())
    assert cd.cooling() == {"a"}
    assert cd.started() == {"a": 1}
    clock.t += 29.9
    assert cd.cooling() == {"a"}
    clock.t += 0.1
    assert cd.cooling() == frozenset()


def test_failures_spread_wider_than_the_window_do_not_add_up() -> None:
    cd, clock = _cooldowns()
    for _ in range(5):
        cd.failed(down())
        cd.failed(down())
        clock.t += 61
        assert cd.cooling() == frozenset()


def test_a_success_in_between_resets_the_count() -> None:
    cd, _ = _cooldowns()
    cd.failed(down())
    cd.failed(down())
    cd.succeeded("a")
    cd.failed(down())
    cd.failed(down())
    assert cd.cooling() == frozenset()


def test_only_the_models_own_faults_count() -> None:
    cd, _ = _cooldowns(failures=1)
    cd.failed(upstream_error("a", 400, "bad request"))  # the client's request, not the model
    cd.failed(upstream_error("a", 413, "too long", context_exceeded=True))  # a larger model may take it
    cd.failed(upstream_error("a", 422, "unprocessable"))
    assert cd.cooling() == frozenset()
    for status, model in ((401, "b"), (429, "c"), (500, "d"), (502, "e")):
        cd.failed(upstream_error(model, status, "x"))
    cd.failed(upstream_error("f", 0, "no answer", timed_out=True))
    assert cd.cooling() == {"b", "c", "d", "e", "f"}


def test_on_probation_one_failure_cools_it_down_again_and_a_success_clears_it() -> None:
    cd, clock = _cooldowns()
    for _ in range(3):
        cd.failed(down())
    clock.t += 30
    assert cd.cooling() == frozenset()
    cd.failed(down())
    assert cd.cooling() == {"a"} and cd.started() == {"a": 2}
    clock.t += 30
    assert cd.cooling() == frozenset()
    cd.succeeded("a")
    cd.failed(down())
    assert cd.cooling() == frozenset()


def test_failures_while_cooling_do_not_extend_it() -> None:
    cd, clock = _cooldowns()
    for _ in range(3):
        cd.failed(down())
    clock.t += 20
    cd.failed(down())  # a call that began before the cooldown did
    clock.t += 10
    assert cd.cooling() == frozenset()


def test_a_success_ends_a_cooldown_early() -> None:
    """A request naming the model goes to it even while it cools down; if it answers, it is back."""
    cd, _ = _cooldowns()
    for _ in range(3):
        cd.failed(down())
    assert cd.cooling() == {"a"}
    cd.succeeded("a")
    assert cd.cooling() == frozenset()


def test_models_cool_down_and_recover_independently() -> None:
    cd, clock = _cooldowns()
    for _ in range(3):
        cd.failed(down("a"))
    clock.t += 10
    for _ in range(3):
        cd.failed(down("b"))
    assert cd.cooling() == {"a", "b"}
    (a, b) = cd.status()
    assert (a.model, b.model) == ("a", "b") and a.until_epoch < b.until_epoch and "503" in a.reason
    clock.t += 20
    assert cd.cooling() == {"b"}
    clock.t += 10
    assert cd.cooling() == frozenset()


def test_a_retry_after_cools_down_at_once_for_as_long_as_it_says() -> None:
    cd, clock = _cooldowns()
    cd.failed(upstream_error("a", 429, "slow down", retry_after="5"))
    assert cd.cooling() == {"a"}
    clock.t += 5
    assert cd.cooling() == frozenset()
    cd.failed(upstream_error("b", 503, "maintenance", retry_after="7200"))  # capped at an hour
    clock.t += 3599
    assert cd.cooling() == {"b"}
    clock.t += 1
    assert cd.cooling() == frozenset()
    cd.failed(upstream_error("c", 500, "oops", retry_after="60"))  # not a "come back later" status: counted
    assert cd.cooling() == frozenset()


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    assert retry_after_seconds("12") == 12 and retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    for bad in (None, "", "soon", "-3", "0", "Wed, 21 Oct 2015 07:28:00 GMT", "nan", "inf"):
        assert retry_after_seconds(bad) is None, bad


def test_zero_failures_turns_it_off_and_a_reload_keeps_the_counts() -> None:
    cd, _ = _cooldowns(failures=0)
    for _ in range(10):
        cd.failed(down())
    assert cd.cooling() == frozenset()
    cd.settings = Cooldown(failures=2)
    cd.failed(down())
    cd.failed(down())
    assert cd.cooling() == {"a"}


def test_workers_pass_on_the_cooldowns_they_begin_and_not_the_ones_they_adopted() -> None:
    clock = Clock()
    wall = Clock()
    wall.t = 1_800_000_000.0
    settings = Cooldown(failures=1, window_s=60, cooldown_s=30)
    a, b = Cooldowns(settings, clock, wall), Cooldowns(settings, clock, wall)
    a.failed(down("x"))
    shared = a.shared()
    assert [(s[0], s[1]) for s in shared] == [("x", wall.t + 30)]
    b.adopt(shared)
    assert b.cooling() == {"x"} and b.started() == {}  # counted once, where it began
    assert b.shared() == []  # not passed back (or on): only the worker that saw it fail speaks for it
    assert b.status()[0].until_epoch == wall.t + 30
    clock.t += 30
    assert b.cooling() == frozenset()

    c = Cooldowns(settings, clock, wall)
    a.failed(down("y"))
    c.adopt(a.shared())
    assert c.cooling() == {"y"}  # c had no word of y: it takes a's
    wall.t += 1
    c.succeeded("y")  # answered here since: ends it
    c.adopt(a.shared())  # a's cooldown began before that answer: not taken up again
    assert c.cooling() == frozenset()

    d = Cooldowns(settings, clock, wall)
    d.succeeded("z")  # d has only ever had answers from z: it keeps no failure state for it
    wall.t += 1
    a.failed(down("z"))  # ...and a's cooldown of z begins after d's answer: taken up
    d.adopt(a.shared())
    assert "z" in d.cooling()
    e = Cooldowns(settings, clock, wall)
    wall.t += 1
    e.succeeded("z")  # an answer after a's cooldown began: not taken up, though e never failed on z
    e.adopt(a.shared())
    assert "z" not in e.cooling() and "y" in e.cooling()


def test_a_500_to_a_request_with_unchecked_parameters_is_not_held_against_the_server() -> None:
    """llama-server answers some bad values of its own parameters (forwarded by the gateway unchecked) with a 500."""
    cd, _ = _cooldowns()
    for _ in range(5):
        cd.failed(down(status=500), "a", unchecked=True)
    assert cd.cooling() == frozenset()
    for _ in range(3):  # other failures of such a request still count: a 502 or 503 is about the server
        cd.failed(down(status=503), "a", unchecked=True)
    assert cd.cooling() == {"a"}
    cd2, _ = _cooldowns()
    for _ in range(3):  # and a 500 to a request the gateway checked in full counts, as before
        cd2.failed(down(status=500), "a")
    assert cd2.cooling() == {"a"}
