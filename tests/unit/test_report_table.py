"""`tiergate report` and `check-models` print their tables with each number at the precision its column needs."""

from __future__ import annotations

from gateway.report_cmd import format_table


def test_dollars_milliseconds_and_shares_each_get_their_precision() -> None:
    rows = [{"model": "m", "cost_usd": 0.0000123, "p50_ms": 42.214401, "cache_hit_rate": 0.5, "requests": 3}]
    _, line = format_table(rows, ["model", "cost_usd", "p50_ms", "cache_hit_rate", "requests"]).splitlines()
    # Before, every float had six places: "42.214401" ms, "0.500000" a share.
    assert line.split() == ["m", "0.000012", "42.2", "0.500", "3"]
    assert format_table([{"cost_usd": 12345.678}], ["cost_usd"]).splitlines()[1].strip() == "12345.68"


def test_text_columns_are_left_aligned_and_number_columns_right_aligned() -> None:
    """check-models' `status` holds messages of 100 characters: right-aligned, its header and the short statuses sat
    far to the right of their names."""
    rows = [
        {"server": "a", "status": "ok", "latency_ms": 1.5, "cost_usd": None},
        {"server": "longer-name", "status": "HTTP 502: connection failed", "latency_ms": 12.25, "cost_usd": None},
    ]
    head, ok, failed = format_table(rows, ["server", "status", "latency_ms", "cost_usd"]).splitlines()
    assert head.index("status") == ok.index("ok") == failed.index("HTTP")  # text: left-aligned under its name
    assert head.index("latency_ms") + len("latency_ms") == ok.index("1.5") + 3 == failed.index("12.2") + 4
    assert ok.endswith("-") and not head.endswith(" ")  # no column of text pads a line's end
