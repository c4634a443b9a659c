"""Request ids (`x-request-id`, the ledger's `request_id`): unique, and in the order the requests arrived.

`tg-` then 32 hex digits: the arrival time in microseconds (14 digits), then 72 random bits. The ledger keeps a
unique index on the id, and every record is inserted into it. Random ids (128 random bits, until session 27) landed
all over that index, so each batch of records dirtied a page of it per record: with 40,000 records of history, an
insert cost 34-40 us of the writer's time per record, 14-15 of them in the kernel writing those pages to SQLite's
WAL; ids in arrival order go to the index's end, and the same batches took 11 us (docs/benchmarks.md, "Request ids").
The writer's time is taken from the serving threads (the cores are shared), and under full load it is what the
gateway can serve at (gateway/ledger/writer.py: GIVE_WAY_AT). Ids need uniqueness, not secrecy: 72 random bits
within one microsecond, from a seeded generator (os.urandom is a system call, ~20 us here). A wall clock set back
costs the order for a while, never uniqueness.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable

# What `new` makes, and so the only ids the ledger can hold (POST /v1/feedback refuses any other).
PATTERN = re.compile(r"tg-[0-9a-f]{32}")


def is_request_id(text: str) -> bool:
    return PATTERN.fullmatch(text) is not None


class RequestIds:
    def __init__(self, seed: bytes | None = None, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._rng = random.Random(seed if seed is not None else os.urandom(16))
        self._clock_ns = clock_ns

    def new(self) -> str:
        return f"tg-{self._clock_ns() // 1000:014x}{self._rng.getrandbits(72):018x}"
