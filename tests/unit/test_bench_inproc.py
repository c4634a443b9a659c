"""bench/inproc.py's check that each timed answer is of the kind it claims to time."""

from bench.inproc import body_of, wrong


def test_a_hit_that_missed_the_cache_is_refused() -> None:
    assert wrong("hit", 200, {b"x-tiergate-cache": b"miss"}) == "x-tiergate-cache: miss"
    assert wrong("hit", 200, {b"x-tiergate-cache": b"hit"}) is None


def test_a_miss_served_from_the_cache_is_refused() -> None:
    assert wrong("explicit", 200, {b"x-tiergate-cache": b"hit"}) == "x-tiergate-cache: hit"
    assert wrong("explicit", 200, {b"x-tiergate-cache": b"miss"}) is None


def test_auto_must_be_classified_and_the_others_not() -> None:
    assert wrong("auto", 200, {b"x-tiergate-cache": b"miss"}) == "not classified"
    assert wrong("auto", 200, {b"x-tiergate-cache": b"miss", b"x-tiergate-score": b"0.4"}) is None
    assert wrong("explicit", 200, {b"x-tiergate-cache": b"miss", b"x-tiergate-score": b"0.4"}) == "classified"


def test_an_error_is_refused_whatever_its_headers() -> None:
    assert wrong("hit", 429, {b"x-tiergate-cache": b"hit"}) == "HTTP 429"


def test_only_the_hit_is_deterministic() -> None:
    assert b'"temperature":0' in body_of("hit")
    assert b"temperature" not in body_of("explicit") and b'"model":"auto"' in body_of("auto")
