"""Each ledger test runs in its own folder: a PostgreSQL ledger opened without a spool folder keeps its spool and
journal in the working folder (`./tiergate-ledger.spool`), which must not be the repository's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
