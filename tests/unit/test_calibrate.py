from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifiers.calibrate import achieved_shares, min_confidence_for_keep, thresholds_for_shares
from gateway.calibrate_cmd import rewrite_thresholds
from gateway.ledger import LedgerRecord, open_ledger
from gateway.policy_file import load, parse
from gateway.settings import PACKAGE_ROOT
from router.policy import Policy


def test_thresholds_split_traffic_by_the_requested_shares() -> None:
    scores = [i / 1000 for i in range(1000)]
    t = thresholds_for_shares(scores, [0.4, 0.5, 0.1])
    assert t == pytest.approx([0.4, 0.9], abs=0.002)
    below = [sum(s < x for s in scores) / 1000 for x in t]
    assert below == pytest.approx([0.4, 0.9], abs=0.002)


def test_weights_count_sources_equally() -> None:
    # 900 low scores from one source, 100 high from another: weighted equally, the median lies between them.
    scores = [0.1] * 900 + [0.9] * 100
    weights = [1 / 900] * 900 + [1 / 100] * 100
    assert thresholds_for_shares(scores, [0.5, 0.5])[0] == pytest.approx(0.1)
    assert thresholds_for_shares(scores, [0.6, 0.4], weights)[0] == pytest.approx(0.9)


def test_thresholds_stay_strictly_increasing_inside_the_unit_interval() -> None:
    t = thresholds_for_shares([0.5] * 10, [0.3, 0.3, 0.4])
    assert 0 < t[0] < t[1] < 1


def test_achieved_shares_follow_the_policys_rule_at_a_threshold() -> None:
    scores = [0.1, 0.3, 0.5, 0.6, 0.9]
    policy = Policy(thresholds=[0.3, 0.6], baseline_model="m")
    tiers = [policy.min_tier(x) for x in scores]
    assert achieved_shares(scores, [0.3, 0.6]) == pytest.approx([tiers.count(t) / 5 for t in range(3)])
    assert achieved_shares(scores, [0.3, 0.6]) == pytest.approx([0.2, 0.4, 0.4])
    assert achieved_shares(scores, [0.3, 0.6], [1, 1, 1, 1, 6]) == pytest.approx([0.1, 0.2, 0.7])
    evenly = [i / 1000 for i in range(1000)]
    assert achieved_shares(evenly, thresholds_for_shares(evenly, [0.4, 0.5, 0.1])) == pytest.approx([0.4, 0.5, 0.1])


@pytest.mark.parametrize("shares", [[1.0], [0.5, 0.6], [-0.1, 1.1]])
def test_bad_shares_rejected(shares: list[float]) -> None:
    with pytest.raises(ValueError):
        thresholds_for_shares([0.1, 0.2], shares)


def _calibrate(cfg: Path, ledger: Path) -> list[str]:
    """`tiergate calibrate` as a user runs it, on this policy file and ledger."""
    return [sys.executable, "-m", "gateway.cli", "calibrate", "--config", str(cfg), "--ledger", str(ledger)]


def test_rewrite_changes_only_that_value_and_keeps_comments() -> None:
    text = (PACKAGE_ROOT / "config" / "tiergate.yaml").read_text()
    new = rewrite_thresholds(text, "frugal", [0.1, 0.2])
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert changed == [("    thresholds: [0.3235, 0.6405]", "    thresholds: [0.1, 0.2]")]
    assert parse(new, Path("x")).policies["frugal"].thresholds == [0.1, 0.2]
    block = "models: []\npolicies:\n  p:\n    thresholds:\n      - 0.3\n      - 0.6\n    baseline_model: m  # keep\n"
    assert rewrite_thresholds(block, "p", [0.2, 0.5]) == (
        "models: []\npolicies:\n  p:\n    thresholds:\n      [0.2, 0.5]\n    baseline_model: m  # keep\n"
    )


def test_calibrate_on_ledger_traffic_prints_a_diff_and_writes_on_request(tmp_path: Path) -> None:
    cfg = tmp_path / "tiergate.yaml"
    cfg.write_text((PACKAGE_ROOT / "config" / "tiergate.yaml").read_text())
    ledger = open_ledger(tmp_path / "l.sqlite3")
    now = time.time()
    for i in range(100):
        ledger.record(LedgerRecord(ts=now, request_id=f"r{i}", policy="default", requested_model="auto", score=i / 100))
    ledger.record(
        LedgerRecord(ts=now - 3 * 86400, request_id="old", policy="default", requested_model="auto", score=0.99)
    )
    ledger.close()
    cmd = [*_calibrate(cfg, tmp_path / "l.sqlite3"), "--since", "24h", "--shares", "0.5,0.3,0.2"]
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "+    thresholds: [0.5, 0.8]" in dry.stdout and "100 routed requests" in dry.stderr
    # Few scores are said to be few; shares these thresholds do give are not flagged.
    assert "warning: only 100 scores: each share is known to about +-0.05" in dry.stderr
    assert "not [0.5, 0.3, 0.2]" not in dry.stderr
    assert load(cfg).policies["default"].thresholds == [0.2263, 0.5603]  # not written without --write
    assert subprocess.run([*cmd, "--write"], capture_output=True, timeout=120).returncode == 0
    assert load(cfg).policies["default"].thresholds == [0.5, 0.8]


def test_calibrate_says_when_its_thresholds_miss_the_shares_or_it_has_nothing_to_go_on(tmp_path: Path) -> None:
    cfg = tmp_path / "tiergate.yaml"
    cfg.write_text((PACKAGE_ROOT / "config" / "tiergate.yaml").read_text())
    ledger = open_ledger(tmp_path / "l.sqlite3")
    now = time.time()
    # A repeated prompt: 300 requests with one score, 200 spread out. Half the traffic cannot be split 0.3 / 0.3.
    scores = [0.42] * 300 + [0.5 + i / 400 for i in range(200)]
    for i, x in enumerate(scores):
        ledger.record(LedgerRecord(ts=now, request_id=f"r{i}", policy="default", requested_model="auto", score=x))
    ledger.close()
    cmd = [*_calibrate(cfg, tmp_path / "l.sqlite3"), "--since", "24h", "--shares", "0.3,0.3,0.4"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "give shares [0.0, 0.6, 0.4], not [0.3, 0.3, 0.4]: prompts that share a score" in r.stderr
    assert "only 500" not in r.stderr  # enough of them
    empty = subprocess.run([*cmd[:-4], "--since", "1s", "--shares", "0.3,0.3,0.4"], capture_output=True, text=True)
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert empty.stderr.startswith("tiergate calibrate: no scores to calibrate on (0 routed requests")
    assert load(cfg).policies["default"].thresholds == [0.2263, 0.5603]


def test_min_confidence_keeps_the_requested_share_of_drafts() -> None:
    confs = [i / 100 for i in range(1, 101)]
    assert min_confidence_for_keep(confs, 0.3) == 0.71  # 0.71..1.00: 30 of 100 drafts at or above it
    assert sum(c >= min_confidence_for_keep(confs, 0.55) for c in confs) == 55
    assert min_confidence_for_keep([0.5] * 10, 0.2) == 0.5  # ties cannot be split: all are kept
    assert min_confidence_for_keep([1.0, 1.0], 0.5) == 0.9999  # inside (0, 1), as the policy requires
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError):
            min_confidence_for_keep(confs, bad)
    with pytest.raises(ValueError):
        min_confidence_for_keep([], 0.5)


def test_calibrate_cascade_on_ledger_drafts(tmp_path: Path) -> None:
    cfg = tmp_path / "tiergate.yaml"
    text = (PACKAGE_ROOT / "config" / "tiergate.yaml").read_text()
    text += "  careful:\n    thresholds: [0.3, 0.6]\n    baseline_model: gpt-4o\n"
    text += "    cascade: {below_score: 0.6, min_confidence: 0.5}  # keep this comment\n"
    cfg.write_text(text)
    ledger = open_ledger(tmp_path / "l.sqlite3")
    now = time.time()
    for i in range(40):
        outcome = ["kept", "escalated", "draft_failed", "kept"][i % 4]
        conf = None if outcome == "draft_failed" else (i + 1) / 50
        ledger.record(
            LedgerRecord(
                ts=now,
                request_id=f"r{i}",
                policy="careful",
                requested_model="auto",
                cascade=outcome,
                draft_model="smollm2-local",
                draft_confidence=conf,
            )
        )
    ledger.record(
        LedgerRecord(
            ts=now, request_id="other", policy="default", requested_model="auto", cascade="kept", draft_confidence=0.01
        )
    )
    ledger.close()
    base = _calibrate(cfg, tmp_path / "l.sqlite3")
    cmd = [*base, "--policy", "careful", "--keep-share", "0.5"]
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    judged = sorted(((i + 1) / 50 for i in range(40) if i % 4 != 2), reverse=True)  # 30 drafts with a confidence
    want = judged[14]  # the 15th highest keeps 15 of 30
    assert f"min_confidence: {want:g}}}  # keep this comment" in dry.stdout and "30 drafts" in dry.stderr
    assert "warning: only 30 drafts: each share is known to about +-0.09" in dry.stderr
    assert "keeps" not in dry.stderr  # 15 of 30 kept: the share asked for
    assert load(cfg).policies["careful"].cascade.min_confidence == 0.5  # type: ignore[union-attr]
    assert subprocess.run([*cmd, "--write"], capture_output=True, timeout=120).returncode == 0
    assert load(cfg).policies["careful"].cascade.min_confidence == want  # type: ignore[union-attr]
    tied = open_ledger(tmp_path / "tied.sqlite3")
    for i in range(20):  # one confidence for every draft: no threshold keeps 30% of them
        tied.record(
            LedgerRecord(
                ts=now,
                request_id=f"t{i}",
                policy="careful",
                requested_model="auto",
                cascade="kept",
                draft_confidence=0.5,
            )
        )
    tied.close()
    r = subprocess.run(
        [*_calibrate(cfg, tmp_path / "tied.sqlite3"), "--policy", "careful", "--keep-share", "0.3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "min_confidence 0.5 keeps 1.000, not 0.3: drafts that share a confidence" in r.stderr
    nocascade = subprocess.run([*base, "--keep-share", "0.5"], capture_output=True, text=True, timeout=120)
    assert nocascade.returncode == 1 and "no cascade block" in nocascade.stderr
    both = subprocess.run([*cmd, "--shares", "0.5,0.5"], capture_output=True, text=True, timeout=120)
    assert both.returncode == 2
