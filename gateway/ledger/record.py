"""The ledger record: one per request (success, error, cache hit), and its row / spool-line encodings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from operator import attrgetter
from typing import Any


@dataclass
class LedgerRecord:
    ts: float
    request_id: str
    policy: str
    requested_model: str
    routed_model: str | None = None
    tier: int | None = None
    score: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    baseline_model: str | None = None
    baseline_cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_type: str | None = None
    fallbacks: list[str] = field(default_factory=list)
    stream: bool = False
    degraded: bool = False
    endpoint: str = "chat.completions"
    cache: str = "bypass"
    saved_usd: float = 0.0  # what a cache hit saved (the routed model's cost); routing's saving is derived
    key_id: str | None = None  # a hash of the caller's API key, never the key
    prompt: str | None = None  # only when the policy opts in (record_prompts)
    cascade: str | None = None  # kept / escalated / draft_failed when the policy cascades (router/cascade.py)
    draft_model: str | None = None
    draft_confidence: float | None = None
    draft_cost_usd: float = 0.0  # an escalated draft's cost, included in cost_usd
    usage_estimated: bool = False  # the upstream reported no usage: the tokens are the gateway's estimate
    end_user: str | None = None  # the request's `user` (the app's id for its end user), at most END_USER_MAX chars
    tags: str | None = None  # the request's x-tiergate-tags as ",a,b," (gateway/tags.py)
    cached_tokens: int = 0  # of prompt_tokens, those read from the provider's prompt cache (billed at its price)
    private_data: str | None = None  # kinds of private data the policy found in the request, as ",email,card,"
    route: str | None = None  # the policy's route the prompt matched (README: routes by example), if any


END_USER_MAX = 256  # OpenAI's own bound on `user`; a longer one is cut, not refused
COLUMNS = [f.name for f in fields(LedgerRecord)]
_values = attrgetter(*COLUMNS)
_FALLBACKS = COLUMNS.index("fallbacks")
_FLAGS = [COLUMNS.index(name) for name in ("stream", "degraded", "usage_estimated")]
# What clients and upstreams write into a record, as they wrote it: text may hold NUL (JSON allows "\u0000"), which
# PostgreSQL's text cannot store, and counts may exceed the 64-bit integers both databases store. Either failed the
# whole batch it was in, and on PostgreSQL the writer then took the database for down and spooled every record after
# it, the bad one replayed (and failing) for good: one request with `"user": "bob\u0000"` stopped a worker's ledger.
_CLIENT_TEXT = [COLUMNS.index(name) for name in ("requested_model", "prompt", "end_user")]
_REPORTED_COUNTS = [COLUMNS.index(name) for name in ("prompt_tokens", "completion_tokens", "cached_tokens")]
INT_MAX = (1 << 63) - 1


def storable_text(s: str) -> str:
    """`s` as every backend can store it: NUL as U+FFFD, the replacement character (filters are looked up alike)."""
    return s.replace("\x00", "\ufffd") if "\x00" in s else s


def to_row(r: LedgerRecord) -> tuple[Any, ...]:
    """Column values in COLUMNS order; lists as JSON and booleans as 0/1, the same on every backend.

    Attribute reads, not dataclasses.asdict (which deep-copies): the writer thread must keep up with a worker's
    full request rate while sharing the interpreter lock with it."""
    v = list(_values(r))
    v[_FALLBACKS] = json.dumps(v[_FALLBACKS]) if v[_FALLBACKS] else "[]"
    for i in _FLAGS:
        v[i] = int(v[i])
    for i in _CLIENT_TEXT:
        if v[i] is not None:
            v[i] = storable_text(v[i])
    for i in _REPORTED_COUNTS:
        v[i] = min(max(v[i], 0), INT_MAX)  # an upstream's nonsense count, kept as the most that can be stored
    return tuple(v)


def from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(COLUMNS, row, strict=True))
    d["fallbacks"] = json.loads(d["fallbacks"])
    return d


def to_line(r: LedgerRecord) -> str:
    return json.dumps(asdict(r), separators=(",", ":"))


def from_line(line: str) -> LedgerRecord:
    d = json.loads(line)
    known = {k: v for k, v in d.items() if k in COLUMNS}  # a spool written by a newer version may carry more
    return LedgerRecord(**known)
