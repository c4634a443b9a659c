"""Policy file reloads: each worker re-reads its YAML every few seconds and, when the text has changed and is valid,
swaps the new policy in between requests (gateway/app.py: rewire). An invalid file is logged, once per version of
it, and the policy in force stays: a typo saved by an editor never takes a running gateway down.

Polling the file rather than waiting for a signal reaches every worker of `tiergate serve --workers N` (uvicorn's
supervisor answers SIGHUP by restarting them all, which also works, at the price of reloading the classifier), and
also catches a Kubernetes ConfigMap update, which swaps a symlink rather than writing the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from gateway.policy_file import PolicyFileError, parse
from router.policy import TiergateConfig

log = logging.getLogger("tiergate.reload")


class PolicyWatcher:
    def __init__(self, path: Path, apply: Callable[[TiergateConfig], None], every_s: float = 2.0) -> None:
        self._path = path
        self._apply = apply
        self.every_s = every_s
        self._seen: str | None = None  # digest of the last text read, applied or refused
        self.reloads = 0

    def start(self) -> None:
        """Take the file as it is now as the version in force (the app was built from it)."""
        self._seen = self._digest(self._read())

    @staticmethod
    def _digest(text: bytes | None) -> str | None:
        return hashlib.sha256(text).hexdigest() if text is not None else None

    def _read(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except OSError:
            return None

    def _changed(self) -> TiergateConfig | None:
        """A new valid policy if the file changed since the last look, else None (off the event loop: file I/O)."""
        text = self._read()
        digest = self._digest(text)
        if text is None or digest == self._seen:
            return None  # unchanged, or gone for a moment (an editor's save, a symlink swap): keep what runs
        self._seen = digest
        try:
            return parse(text.decode("utf-8", errors="replace"), self._path)
        except PolicyFileError as e:
            log.error(
                "policy file %s changed but is invalid; the policy in force stays:\n%s", self._path, "\n".join(e.errors)
            )
            return None

    async def check(self) -> bool:
        """Look once; True if a new policy was applied."""
        cfg = await run_in_threadpool(self._changed)
        if cfg is None:
            return False
        self._apply(cfg)  # on the event loop: requests see the old policy or the new one, never half of each
        self.reloads += 1
        log.info("policy file %s reloaded", self._path)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.check()
            except Exception:  # a bug here must not stop later reloads, nor the gateway
                log.exception("policy reload failed; the policy in force stays")
