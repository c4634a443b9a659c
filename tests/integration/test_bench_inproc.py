"""bench/inproc.py end to end: the real app in process, the fake upstream over loopback, a profile of a hit."""

from __future__ import annotations

import subprocess
import sys

from gateway.settings import PACKAGE_ROOT


def test_it_times_each_kind_and_profiles_the_gateways_own_code() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.inproc", "--requests", "20", "--rounds", "2", "--profile", "hit", "--top", "40"],
        cwd=PACKAGE_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in out.stdout.splitlines() if line.startswith("| ")}
    for kind in ("hit", "explicit", "auto"):
        p50s = rows[kind].split("|")[2].split(" / ")
        assert len(p50s) == 2 and all(float(x) > 0 for x in p50s), rows[kind]
    assert "cProfile of 20 'hit' requests:" in out.stdout
    # The hit path's own modules carry its time, by function and by module; the classifier runs on no hit.
    assert "gateway/routes/chat:" in out.stdout and "| gateway/response_cache |" in out.stdout
    assert "onnxruntime" not in out.stdout.split("cProfile of")[1]
