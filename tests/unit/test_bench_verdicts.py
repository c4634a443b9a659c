"""bench/gateways.py's verdicts: each issue-6 target judged on unrounded numbers, misses marked."""

from bench.gateways import verdicts


def test_a_hit_ratio_just_under_three_is_a_miss_though_it_rounds_to_three() -> None:
    text = verdicts(48.6, 0.81, 17.80, 16.06, 2.989, 241.0)
    assert "hit >= 3x faster than a miss 2.99x: **missed** (by 0.01x)" in text
    assert "c=64 vs LiteLLM's proxy >= 5x 48.6x: met" in text
    assert "explicit added p50 <= 2 ms 0.81 ms: met (by 1.19 ms)" in text
    assert "auto added p50 <= the classifier alone + 1 ms 17.80 vs 17.06 ms: **missed** (by 0.74 ms)" in text
    assert "RSS per worker <= 350 MB 241 MB: met (by 109 MB)" in text


def test_each_target_at_its_bound_is_met_and_past_it_missed() -> None:
    at = verdicts(5.0, 2.0, 5.0, 4.0, 3.0, 350.0)
    assert "**missed**" not in at
    past = verdicts(4.9, 2.01, 5.01, 4.0, 2.999, 351.0)
    assert past.count("**missed**") == 5
