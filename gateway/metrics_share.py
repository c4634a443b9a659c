"""Metrics across `tiergate serve --workers N`: each worker's counters as a snapshot file in one shared folder.

The workers share one port, so a Prometheus scrape reaches one of them, whichever accepts. Without this, each scrape
would report that worker's counts alone, and every series would jump between the workers' values, which Prometheus
reads as counter resets. So each worker writes its snapshot here every second and before it answers a scrape, and
the scrape sums its own live counts with the other workers' latest snapshots (at most ~1 s old). A worker that dies
leaves its last snapshot behind, so the sums never go backwards when uvicorn replaces it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("tiergate.metrics")


class SharedSnapshots:
    """One folder per `tiergate serve`; one file per worker process (`me`)."""

    def __init__(self, folder: Path, me: str) -> None:
        self.folder = folder
        self.me = me
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, snapshot: dict[str, Any]) -> None:
        """Replace this worker's snapshot atomically: a reader sees the old file or the new one, never half."""
        tmp = self.folder / f".{self.me}.tmp"
        tmp.write_text(json.dumps(snapshot, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.folder / f"{self.me}.json")

    def peers(self) -> list[tuple[dict[str, Any], float]]:
        """The other workers' latest snapshots, each with its age in seconds (a live worker's is at most ~1 s old;
        a dead one's only grows). One that cannot be read is skipped (and logged), not fatal."""
        out = []
        now = time.time()
        for path in sorted(self.folder.glob("*.json")):
            if path.stem == self.me:
                continue
            try:
                age = now - path.stat().st_mtime
                out.append((json.loads(path.read_text(encoding="utf-8")), age))
            except (OSError, ValueError) as e:
                log.warning("metrics snapshot %s unreadable: %s", path, e)
        return out
