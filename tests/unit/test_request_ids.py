"""Request ids: `tg-` and 32 hex digits, unique, and sorted as the requests arrived (the ledger's unique index on
them takes each new one at its end: gateway/request_ids.py)."""

from __future__ import annotations

import re

from gateway.request_ids import RequestIds


def test_ids_follow_the_clock_and_stay_unique_within_one_microsecond() -> None:
    now = [1_795_881_791_123_456_000]
    ids = RequestIds(seed=b"s", clock_ns=lambda: now[0])
    same_us = [ids.new() for _ in range(1000)]
    assert len(set(same_us)) == 1000 and all(re.fullmatch(r"tg-[0-9a-f]{32}", i) for i in same_us)
    later = []
    for _ in range(50):
        now[0] += 1000  # one microsecond
        later.append(ids.new())
    assert later == sorted(later) and min(later) > max(same_us)
    # Two workers (two generators) in the same microsecond: their random parts differ.
    assert RequestIds(clock_ns=lambda: now[0]).new() != RequestIds(clock_ns=lambda: now[0]).new()


def test_the_real_clock_orders_ids_too() -> None:
    ids = RequestIds()
    stamps = [ids.new()[3:17] for _ in range(200)]  # the microseconds; ids made within one are in any order
    assert stamps == sorted(stamps) and len(set(stamps)) > 1
