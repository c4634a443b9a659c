"""Process settings (not routing policy): where things are, read from TIERGATE_* variables or given directly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from router.durations import duration_s
from router.policy import MAX_TIMEOUT_S

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARTIFACT = PACKAGE_ROOT / "classifiers" / "artifacts" / "complexity-v1.json"


def cache_dir(*parts: str) -> Path:
    """Per-machine caches outside the clone (built binaries, ONNX exports, embeddings): $TIERGATE_CACHE or
    ~/.cache/tiergate. Kept across clones so set-up work happens once per machine."""
    import os

    return Path(os.environ.get("TIERGATE_CACHE", Path.home() / ".cache" / "tiergate")).joinpath(*parts)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERGATE_", extra="forbid")

    @field_validator("ledger_retention")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            duration_s(v)  # a typo fails at start-up, naming the variable, instead of deleting on a wrong period
        return v

    config: Path = Field(default=PACKAGE_ROOT / "config" / "tiergate.yaml", description="policy YAML")
    # How often each worker looks for an edited policy file and, if it is valid, swaps it in (gateway/reload.py);
    # 0 reads it at start-up only.
    config_poll_s: float = Field(default=2.0, ge=0.0, le=3600.0)
    host: str = "127.0.0.1"
    port: int = 8000
    ledger_path: Path = Field(default=Path("tiergate-ledger.sqlite3"), description="SQLite ledger file")
    # postgresql://user@host:port/db puts the ledger in PostgreSQL instead of ledger_path.
    ledger_url: str | None = None
    # Where records wait while the ledger database is down (default: beside the SQLite file, or
    # ./tiergate-ledger.spool for PostgreSQL). Workers may share it.
    ledger_spool_dir: Path | None = None
    # Delete request records older than this (30d, 90d, ...; unset: keep everything), checked by each worker at
    # start and then every ledger_prune_every_s; records inside a budget window or with a judgement stay
    # (gateway/ledger/retention.py).
    ledger_retention: str | None = None
    ledger_prune_every_s: float = Field(default=3600.0, gt=0.0, le=86400.0)
    classifier_artifact: Path = DEFAULT_ARTIFACT
    # onnx (default): MiniLM exported to ONNX and quantised to int8 once per machine; 3.2-4.0x faster than torch
    # on the VNNI CPUs measured, AMD EPYC and Intel Xeon (2.5-2.7x without VNNI, still faster than onnx-fp32
    # there), 190 MB resident, and the same routing tier as torch for 99.2% / 99.4% of two disjoint validation
    # sets (issue 3 asks >= 99%). Its time inside a busy gateway also varies less than fp32's, which is what keeps
    # `auto`'s added latency near 1 ms beyond the classifier's own (docs/benchmarks.md, "bench.floor").
    # onnx-fp32: the same vectors as torch exactly (100% of tiers), 2.1x torch. torch: sentence-transformers
    # itself, 494 MB resident.
    encoder: Literal["torch", "onnx-fp32", "onnx"] = "onnx"
    # Bounded so a burst of requests can't pile up unbounded encoder work behind one core.
    classifier_threads: int = Field(default=1, ge=1, le=64)
    classifier_max_batch: int = Field(default=32, ge=1, le=512)
    classifier_max_wait_ms: float = Field(default=0.0, ge=0.0, le=100.0)
    # Score on the event loop's thread when no other request is in progress: saves the 0.1-0.3 ms hand-off to
    # the classifier thread, measured side by side (gateway/batching.py says why that is safe). False: always
    # hand off.
    classifier_inline_when_idle: bool = True
    # Response cache: a Redis URL (redis://host:port/db), or unset for the in-process LRU.
    cache_url: str | None = None
    cache_timeout_ms: float = Field(default=50.0, gt=0, le=5000)
    cache_max_entries: int = Field(default=10_000, ge=1)
    # An upper bound on any upstream call, below which each model's own `timeout_s` rules. By default as high as a
    # policy's `timeout_s` may go, so the policy file's value is the one in force: a default of 60 s silently cut
    # the shipped local model's 120 s in half (a 504 after 60 s).
    upstream_timeout_s: float = Field(default=MAX_TIMEOUT_S, gt=0)
    # Calls in flight per upstream host and worker on the direct path (gateway/h1client.py); more wait their turn.
    upstream_max_connections: int = Field(default=256, ge=1, le=65536)
    # Browser apps on these origins may call the API (CORS): comma-separated, e.g. https://chat.example.com, or *
    # for any. Unset: no CORS headers, so browsers refuse cross-origin calls; apps on servers are unaffected.
    cors_origins: str | None = None
    # On SIGTERM a worker stops taking requests and lets those in flight finish for up to this long; then it cancels
    # the rest, records each (a 503 server_stopping, with what it had cost), drains the ledger and exits. Below the
    # SIGKILL that follows under `docker stop` (10 s) and Kubernetes (30 s) by default, so every request is on record.
    shutdown_grace_s: int = Field(default=8, ge=1, le=3600)  # whole seconds: uvicorn takes no fraction
    log_level: str = "info"
    # json: one JSON object a line (ts, level, logger, message, pid), uvicorn's lines too, for log shippers.
    log_format: Literal["text", "json"] = "text"
    # Where the workers of one `tiergate serve --workers N` leave their metrics snapshots, so that any of them can
    # answer a /metrics scrape for all (gateway/metrics_share.py). Set by `serve` itself; unset for one process.
    metrics_dir: Path | None = None
    # One access-log line per request costs CPU on the hot path and repeats what the ledger records.
    access_log: bool = False
    # One line per finished request with its routing, cost and latency (gateway/request_log.py), for log pipelines.
    request_log: bool = False
