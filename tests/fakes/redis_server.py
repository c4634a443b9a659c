"""A redis-server of a test's own on a spare port: the one a test stops and starts again, never the machine's."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.fakes.upstream import free_port


class OwnRedis:
    """Nothing persisted; `stop()` is an outage (its data is gone, as a restarted cache's would be)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.dir = folder

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _cli(self, *args: str) -> bytes:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, timeout=10).stdout

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = ["--daemonize", "yes", "--dir", str(self.dir), "--logfile", str(self.dir / f"redis-{self.port}.log")]
        subprocess.run(["redis-server", *args, *log], check=True, timeout=10)
        deadline = time.monotonic() + 10
        while self._cli("ping").strip() != b"PONG":
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._cli("shutdown", "nosave")
