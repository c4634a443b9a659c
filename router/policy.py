"""The routing policy: validated, immutable models of what operators write in YAML.

Every model here forbids unknown keys, so a typo in the YAML is an error naming its path instead of a silently
ignored setting. Cross-references (a policy's baseline model, allowed models) are checked once, at load.
"""

from __future__ import annotations

from enum import StrEnum
from fnmatch import fnmatchcase
from functools import cached_property
from itertools import pairwise
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from router.durations import duration_s
from router.private import DEFAULT_KINDS, Kind

NonNegFloat = Annotated[float, Field(ge=0.0)]
Unit = Annotated[float, Field(gt=0.0, lt=1.0)]


def _mentions(annotation: Any, kinds: tuple[Any, ...]) -> bool:
    """Whether a field's type is, or holds anywhere (a union's member, a list's item), one of `kinds`."""
    return annotation in kinds or any(_mentions(a, kinds) for a in get_args(annotation))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # YAML reads true/false/yes/no/on/off as booleans, and pydantic then reads one as 1 or 0 where a number is
        # due: `context_window: true` was a one-token window, `tier: yes` tier 1. A number field takes numbers only.
        if info.field_name is None or not (isinstance(v, bool) or (isinstance(v, list) and bool in map(type, v))):
            return v
        annotation = cls.model_fields[info.field_name].annotation
        if _mentions(annotation, (int, float)) and not _mentions(annotation, (bool, Any)):
            raise ValueError(f"expected a number, got a boolean ({v!r}; YAML reads yes/no/on/off as booleans too)")
        return v


class Price(_Frozen):
    """USD per million tokens; omitted on a model means "look it up in litellm's price table". Prompt tokens the
    provider served from its prompt cache (OpenAI's `cached_tokens`) cost `cached_input_per_mtok` instead of the
    input price (omitted: no discount)."""

    input_per_mtok: NonNegFloat
    output_per_mtok: NonNegFloat
    cached_input_per_mtok: NonNegFloat | None = None


class Capabilities(_Frozen):
    """What a model can do; a request that needs a capability is only sent to models declaring it."""

    tools: bool = False
    vision: bool = False  # takes images (`image_url` content parts)
    audio_input: bool = False  # takes `input_audio` content parts
    audio_output: bool = False  # answers in audio (`modalities` with "audio")
    files: bool = False  # takes `file` content parts (PDFs)
    json_mode: bool = False
    context_window: Annotated[int, Field(gt=0)] = 8192
    # The most answers one request may ask for (`n`); None: no limit. llama-server takes at most its slots (-np).
    max_choices: Annotated[int, Field(ge=1)] | None = None


class Budget(_Frozen):
    """At most `usd` of spend in any trailing `per` (30m, 24h, 7d, ...): a rolling window, so spend older than `per`
    stops counting, rather than a calendar reset that would let a key spend twice its budget around midnight."""

    usd: Annotated[float, Field(gt=0.0)]
    per: str = "30d"

    @field_validator("per")
    @classmethod
    def _duration(cls, v: str) -> str:
        duration_s(v)  # raises ValueError, which pydantic reports under the field's path
        return v

    @property
    def per_s(self) -> float:
        return duration_s(self.per)


_NULLABLE = ("api_base", "api_key_env")
MAX_TIMEOUT_S = 3600.0  # the longest a model's calls may be given


class Deployment(_Frozen):
    """Another server of the same model: a replica of a local server, another region, another provider of the same
    model. What it leaves out, it shares with its model (so replicas behind one key name only their `api_base`)."""

    api_base: str | None = None
    api_key_env: str | None = None
    litellm_model: Annotated[str, Field(min_length=1)] | None = None
    transport: Literal["auto", "litellm"] | None = None
    max_concurrency: Annotated[int, Field(gt=0, le=100_000)] | None = None
    weight: Annotated[float, Field(gt=0.0, le=1000.0)] | None = None


class ModelSpec(_Frozen):
    """One routable chat model."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$")]
    litellm_model: Annotated[str, Field(min_length=1)]
    tier: Annotated[int, Field(ge=0, le=9)]
    api_base: str | None = None
    api_key_env: str | None = None
    local: bool = False
    quantization: str | None = None
    price: Price | None = None
    capabilities: Capabilities = Capabilities()
    timeout_s: Annotated[float, Field(gt=0.0, le=MAX_TIMEOUT_S)] = 60.0
    # A stream whose first chunk takes longer is given up for the next model (streams can fall back only until
    # then): for a local server that queues requests behind one another under load. None: only `timeout_s`.
    first_token_timeout_s: Annotated[float, Field(gt=0.0, le=MAX_TIMEOUT_S)] | None = None
    # auto: an OpenAI-compatible model (`openai/...`: llama.cpp, vLLM, Ollama, OpenAI itself) is called directly
    # over a pooled connection, since litellm's per-call work costs more than the whole rest of a request
    # (docs/benchmarks.md); every other provider goes through litellm. litellm: always through litellm.
    transport: Literal["auto", "litellm"] = "auto"
    # More servers of this model besides the one above: calls go to each in turn (gateway/balancer.py).
    deployments: list[Deployment] = []
    # At most this much spend on the model's answers in any trailing window; past it, routing passes the model over
    # and a request naming it gets a 429 (gateway/budgets.py).
    budget: Budget | None = None
    # At most this many calls in flight to each of its servers, per worker (gateway/inflight.py). More wait their
    # turn, first come first served, for up to `timeout_s`; with `when_full: overflow`, routing sends them to the
    # next adequate model instead while one has room (a latency-for-cost trade the operator opts into).
    max_concurrency: Annotated[int, Field(gt=0, le=100_000)] | None = None
    when_full: Literal["wait", "overflow"] = "wait"
    # Its own server's share of the turns among its deployments (each deployment's `weight` is its share; one
    # that sets none shares this one's). least_busy: the least busy server first, turns by weight between equals;
    # weighted: turns by weight alone, busy or not (a canary at weight 1 beside 9 gets 10% of calls, under any load).
    weight: Annotated[float, Field(gt=0.0, le=1000.0)] = 1.0
    balance: Literal["least_busy", "weighted"] = "least_busy"

    @property
    def openai_compatible(self) -> bool:
        return self.transport == "auto" and self.litellm_model.startswith("openai/")

    def expanded(self) -> tuple[ModelSpec, ...]:
        """This model as one spec per server: its own first, then each deployment's, with what the deployment
        leaves out taken from the model. Each has the model's name, tier, price and capabilities."""
        own = self.model_copy(update={"deployments": []})
        out = [own]
        for d in self.deployments:
            # A null api_base or api_key_env is meaningful (the provider's default address, no key); the others
            # are not, so a null there keeps the model's.
            given = {k: getattr(d, k) for k in d.model_fields_set}
            out.append(own.model_copy(update={k: v for k, v in given.items() if v is not None or k in _NULLABLE}))
        return tuple(out)


# The embedding model every gateway serves in process (the packaged MiniLM the classifier uses): a valid target of
# an alias without being configured.
BUILTIN_EMBEDDING = "all-minilm-l6-v2"


class EmbeddingModelSpec(_Frozen):
    """An embedding model routed through litellm instead of the in-process MiniLM."""

    name: Annotated[str, Field(min_length=1)]
    litellm_model: Annotated[str, Field(min_length=1)]
    api_base: str | None = None
    api_key_env: str | None = None
    price: Price | None = None


class SemanticCachePolicy(_Frozen):
    """Opt-in: serve a cached answer to a differently worded prompt in the same scope. The default threshold comes
    from bench/semantic.py: with the near-miss guard, precision 1.000 on the labelled pairs from 0.72 up; 0.85
    keeps a margin (recall 0.8 there) for near-misses of kinds the pairs don't cover."""

    enabled: bool = False
    threshold: Annotated[float, Field(gt=0.5, le=1.0)] = 0.85
    max_entries_per_scope: Annotated[int, Field(ge=1, le=100_000)] = 2000


class CachePolicy(_Frozen):
    """Response caching for one policy. By default only deterministic requests (temperature 0, or a seed) are
    cached: caching a sampled answer would silently turn a random draw into a fixed one."""

    mode: Literal["off", "exact"] = "exact"
    ttl_s: Annotated[int, Field(ge=1, le=30 * 86400)] = 3600
    only_deterministic: bool = True
    semantic: SemanticCachePolicy = SemanticCachePolicy()


class Cascade(_Frozen):
    """Answer with the cheapest tier first and keep that answer only when its model is confident in it.

    Prompts scored below `below_score` get a draft answer from the cheapest available tier, asked with token
    log-probabilities; the draft is kept when the geometric mean of its tokens' probabilities is at least
    `min_confidence`, otherwise the request goes on to the tier the policy's thresholds chose (or the next tier up
    when the thresholds chose the cheapest one). A model that returns no log-probabilities is never trusted.
    Streamed requests are not cascaded: their first tokens would be on the wire before the draft is judged.
    """

    below_score: Annotated[float, Field(gt=0.0, le=1.0)]
    min_confidence: Unit


class Judge(_Frozen):
    """Grade a sample of cheap answers with a strong model (LLM-as-judge, as RouteLLM labelled its training data):
    a `sample` share of the answers from models below `below_tier` is shown, with its request, to `model`, whose
    1-10 grade is kept as a judgement of that answer (like POST /v1/feedback), so cascade thresholds and the
    classifier can be fitted on this gateway's own traffic (`tiergate export-labels`; needs `record_prompts`)."""

    model: Annotated[str, Field(min_length=1)]
    sample: Annotated[float, Field(gt=0.0, le=1.0)] = 0.02
    below_tier: Annotated[int, Field(ge=1, le=9)] = 1


class PrivateData(_Frozen):
    """Requests whose text holds private data of these kinds (router/private.py) stay on `local: true` models
    (`local_only`: hosted ones are passed over, and a request naming one is refused) or are refused (`reject`)."""

    detect: Annotated[list[Kind], Field(min_length=1)] = list(DEFAULT_KINDS)
    action: Literal["local_only", "reject"] = "local_only"


class Route(_Frozen):
    """A kind of prompt the operator routes by example, as LiteLLM's auto-router and semantic-router do: a prompt
    whose embedding (the classifier's own) has a cosine of at least `min_similarity` with one of `examples` gets
    `tier` as its minimum tier, in place of the one its complexity score gives. For what the classifier's training
    data lacks, such as small talk, which it scores as hard (classifiers/MODEL_CARD.md: known failures).

    `max_turns` reads the route only while the conversation holds at most that many user turns (1: its opening
    message). Later in a conversation a short reply can carry the work before it: "ok" after "Shall I write the
    whole parser?" asks for the parser, so an opening-shaped route must not send it to the cheap tier."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    examples: Annotated[list[Annotated[str, Field(min_length=1, max_length=2000)]], Field(min_length=1, max_length=200)]
    tier: Annotated[int, Field(ge=0, le=9)]
    min_similarity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    max_turns: Annotated[int, Field(ge=1)] | None = None  # None: any turn


class OnUnavailable(StrEnum):
    """When no adequate model is up, or every adequate one fails its call: answer with the strongest weaker one,
    marked degraded (best_effort), or refuse (reject: 503, or the failure's 502 / 504)."""

    best_effort = "best_effort"
    reject = "reject"


class Policy(_Frozen):
    """How one named policy turns a complexity score into a model choice.

    `thresholds[i]` is the score at or above which tier i+1 is the minimum adequate tier, so a policy over tiers
    0..N has N thresholds, strictly increasing inside (0, 1).
    """

    thresholds: Annotated[list[Unit], Field(min_length=1, max_length=9)]
    baseline_model: str
    on_unavailable: OnUnavailable = OnUnavailable.best_effort
    allow_direct: bool = True
    allowed_models: list[str] | None = None
    description: str = ""
    cache: CachePolicy = CachePolicy()
    # The ledger never keeps prompt text unless a policy opts in (e.g. to label traffic for retraining).
    record_prompts: bool = False
    cascade: Cascade | None = None
    private_data: PrivateData | None = None  # off unless set
    judge: Judge | None = None  # off unless set
    # Tried before the thresholds; when several match, the most similar wins (router/routes.py).
    routes: list[Route] = []

    @model_validator(mode="after")
    def _increasing(self) -> Policy:
        t = self.thresholds
        if any(b <= a for a, b in pairwise(t)):
            raise ValueError(f"thresholds must be strictly increasing, got {t}")
        names = [r.name for r in self.routes]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"routes: duplicate names {twice}")
        if over := [r.name for r in self.routes if r.tier > len(t)]:
            raise ValueError(f"routes {over}: tier above the policy's highest ({len(t)}, one per threshold)")
        return self

    def min_tier(self, score: float) -> int:
        """The weakest tier this policy calls adequate for a prompt of this score."""
        return sum(1 for t in self.thresholds if score >= t)


class Cooldown(_Frozen):
    """Skip a model that keeps failing: after `failures` of its calls fail within `window_s` seconds (outages,
    timeouts, rate limits, its own auth errors; never a request's own fault), routing passes it over for
    `cooldown_s` seconds, then tries it again; one more failure then starts another cooldown at once. Each
    worker keeps its own count. `failures: 0` turns it off."""

    failures: Annotated[int, Field(ge=0, le=1000)] = 3
    window_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 60.0
    cooldown_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 30.0


class Retry(_Frozen):
    """Try a model again after a passing failure, before the next model in the chain (LiteLLM's `num_retries`,
    Portkey's `retry`): up to `attempts` more rounds over its servers. Only a failure of the model's own whose
    status is in `on_status` is tried again (a timeout counts as 504, a refused connection as 502), never a request
    the model rejected or one too long for it. Between rounds the wait starts at `backoff_s` and doubles, with
    jitter, up to `max_wait_s`; a Retry-After is waited for as asked when it is no longer than `max_wait_s`, and
    otherwise the next model is tried at once. `attempts: 0` (the default) moves on at the first failure."""

    attempts: Annotated[int, Field(ge=0, le=10)] = 0
    backoff_s: Annotated[float, Field(gt=0.0, le=60.0)] = 0.25
    max_wait_s: Annotated[float, Field(gt=0.0, le=300.0)] = 8.0
    on_status: list[Annotated[int, Field(ge=400, le=599)]] = [429, 500, 502, 503, 504]

    def wait_s(self, retry: int, retry_after_s: float | None, jitter: float) -> float | None:
        """Seconds to wait before retry number `retry` (0 = the first), or None if it is not to be made.
        `jitter` in [0, 1) spreads the waits of calls that failed together (half the backoff fixed, half random)."""
        if retry >= self.attempts:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_wait_s else None
        step = min(self.max_wait_s, self.backoff_s * 2.0**retry)
        return step / 2 + jitter * step / 2


class AlertSettings(_Frozen):
    """What operators are told of, in the log and at a webhook (gateway/alerts.py). The URL is a secret, so the
    file names the variable that holds it; unset, alerts go to the log only."""

    webhook_env: str | None = "TIERGATE_ALERT_WEBHOOK"
    budgets_at: list[Annotated[float, Field(gt=0.0, le=1.0)]] = [0.8, 1.0]  # shares of a key's or model's budget
    cooldowns: bool = True  # a model (server) that begins cooling down after repeated failures


class ApiKey(_Frozen):
    """A client's key, kept as its SHA-256 (hex), never as the key: a leaked config file gives no one access.
    `tiergate new-key NAME` makes a key and prints this entry. `admin` keys may also read the books (the dashboard,
    /api/stats, /metrics). `policies`, if set, are the only ones the key may use, and the first is what `auto` and
    a named model mean for it: an app gets its own routing without changing a line. `rpm` and `tpm` cap its
    requests and tokens per minute, `budget` its spend (gateway/limits.py enforces them, across workers)."""

    name: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    admin: bool = False
    policies: Annotated[list[str], Field(min_length=1)] | None = None
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None  # prompt + completion tokens in any minute
    budget: Budget | None = None

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.budget is not None

    def home_policy(self, default: str) -> str:
        return self.policies[0] if self.policies else default

    def may_use(self, policy: str) -> bool:
        return self.policies is None or policy in self.policies


class TiergateConfig(_Frozen):
    """The whole YAML file."""

    models: Annotated[list[ModelSpec], Field(min_length=1)]
    policies: Annotated[dict[str, Policy], Field(min_length=1)]
    default_policy: str = "default"
    embedding_models: list[EmbeddingModelSpec] = []
    # No keys: the gateway is open (bind it to a private address). Any key: every API call needs one.
    keys: list[ApiKey] = []
    cooldown: Cooldown = Cooldown()
    retry: Retry = Retry()
    alerts: AlertSettings = AlertSettings()
    # What each end user (a request's `user`) may spend in a trailing window; requests without `user` are not held
    # to it (gateway/end_users.py).
    end_user_budget: Budget | None = None
    # What apps ask for, as they ask for it, mapped to a policy (route it) or a model (send it there): an app keeps
    # `model="gpt-4o"` in its code and is routed all the same. Keys are names or patterns with * and ?; an exact
    # name wins over a configured model of that name, a pattern only matches names that are not models. A target
    # that is an embedding model serves /v1/embeddings (`text-embedding-3-small: all-minilm-l6-v2`).
    aliases: dict[Annotated[str, Field(min_length=1, max_length=256)], str] = {}
    version: str = "1"

    @model_validator(mode="after")
    def _references(self) -> TiergateConfig:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: duplicate model names {dupes}")
        for what in ("name", "sha256"):
            vals = [getattr(k, what) for k in self.keys]
            if twice := sorted({v for v in vals if vals.count(v) > 1}):
                raise ValueError(f"keys: duplicate {what} {twice}")
        for k in self.keys:
            if unknown := [p for p in k.policies or [] if p not in self.policies]:
                raise ValueError(f"keys.{k.name}.policies: unknown {unknown} (known: {sorted(self.policies)})")
        known = set(names)
        clash = sorted(known & set(self.policies))
        if clash or "auto" in known or "auto" in self.policies:
            raise ValueError(f"model and policy names must differ from each other and from 'auto': {clash or ['auto']}")
        for name, target in self.aliases.items():
            if name == "auto" or name in self.policies:
                raise ValueError(f"aliases.{name}: a policy name (or auto) cannot be an alias: it already routes")
            if target not in self.policies and target not in known and target not in self.embedding_names:
                known_targets = sorted(self.policies) + sorted(known) + sorted(self.embedding_names)
                raise ValueError(f"aliases.{name}: unknown policy or model {target!r} (known: {known_targets})")
        if self.default_policy not in self.policies:
            raise ValueError(f"default_policy: unknown policy {self.default_policy!r} (known: {sorted(self.policies)})")
        for pname, pol in self.policies.items():
            if pol.baseline_model not in known:
                raise ValueError(
                    f"policies.{pname}.baseline_model: unknown model {pol.baseline_model!r} (known: {sorted(known)})"
                )
            for m in pol.allowed_models or []:
                if m not in known:
                    raise ValueError(f"policies.{pname}.allowed_models: unknown model {m!r} (known: {sorted(known)})")
            if pol.judge is not None and pol.judge.model not in known:
                raise ValueError(
                    f"policies.{pname}.judge.model: unknown model {pol.judge.model!r} (known: {sorted(known)})"
                )
        return self

    @cached_property
    def _by_name(self) -> dict[str, ModelSpec]:
        return {m.name: m for m in self.models}

    def model(self, name: str) -> ModelSpec | None:
        return self._by_name.get(name)

    @cached_property
    def embedding_names(self) -> frozenset[str]:
        """The embedding models a request may name: the built-in MiniLM and the configured ones."""
        return frozenset((BUILTIN_EMBEDDING, *(e.name for e in self.embedding_models)))

    @cached_property
    def alias_patterns(self) -> list[tuple[str, str]]:
        """(pattern, target) for the aliases that are patterns, in the file's order."""
        return [(k, v) for k, v in self.aliases.items() if any(c in k for c in "*?[")]

    def alias(self, name: str) -> str | None:
        """The policy or model an alias maps `name` to: an exact alias first, else (for a name that is not a
        configured model) the first matching pattern in the file's order; None if none."""
        exact = self.aliases.get(name)
        if exact is not None or not self.alias_patterns or name in self._by_name or name in self.embedding_names:
            return exact
        return next((target for pattern, target in self.alias_patterns if fnmatchcase(name, pattern)), None)
