"""`tiergate report` and `check-models` print their tables with each number at the precision its column needs."""

from __future__ import annotations

from gateway.report_cmd import format_table


def test_dollars_milliseconds_and_shares_each_get_their_precision() -> None:
    rows = [{"model": "m", "cost_usd": 0.0000123, "p50_ms": 42.214401, "cache_hit_rate": 0.5, "requests": 3}]
    _, line = format_table(rows, ["model", "cost_usd", "p50_ms", "cache_hit_rate", "requests"]).splitlines()
    # Before, every float had six places: "42.214401" ms, "0.500000" a share.
    assert line.split() == ["m", "0.000012", "42.2", "0.500", "3"]
    assert format_table([{"cost_usd": 12345.678}], ["cost_usd"]).splitlines()[1].strip() == "12345.68"
