"""POST /v1/embeddings: the packaged MiniLM in-process (no network hop), or a configured model through litellm."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import ValidationError

from gateway import tags
from gateway.auth import checked_key
from gateway.deps import Services
from gateway.encoders import MINILM_NAME
from gateway.errors import GatewayError, InvalidRequest, NotFound, UpstreamFailed, from_validation
from gateway.ledger import LedgerRecord
from gateway.ledger.record import END_USER_MAX
from gateway.openapi import LIMITED, error_docs, json_body
from gateway.protocol import MAX_EMBEDDING_INPUTS, EmbeddingRequest
from gateway.provider import UpstreamError
from gateway.trace import key_id

router = APIRouter()


def _b64(vec: list[float]) -> str:
    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()


# The body is parsed here (not by FastAPI) so a bad one is recorded in the ledger too; so it is declared for the
# OpenAPI document by hand (gateway/openapi.py adds the schema).
@router.post(
    "/v1/embeddings",
    openapi_extra=json_body("EmbeddingRequest"),
    responses=error_docs(
        {404: "No such embedding model.", 429: LIMITED, 502: "The configured embedding model failed."}
    ),
)
async def embeddings(request: Request, services: Services) -> dict[str, Any]:
    rid: str = request.state.request_id
    started = time.perf_counter()
    # Read before the record begins: a client that leaves while sending it made no request (ClientDisconnect,
    # answered by gateway/errors.py), as on the chat path.
    raw = await request.body()
    rec = LedgerRecord(
        ts=time.time(),
        request_id=rid,
        policy="",
        requested_model="",
        endpoint="embeddings",
        key_id=key_id(request.headers, checked_key(request.scope)),
        tags=tags.column(request.headers),
    )
    try:
        try:
            req = EmbeddingRequest.model_validate_json(raw)
        except ValidationError as e:
            raise from_validation([dict(x) for x in e.errors()]) from None
        rec.requested_model = req.model
        tags.parse(request.headers.get(tags.HEADER))
        rec.end_user = req.user[:END_USER_MAX] if req.user else None
        await services.limits.admit(checked_key(request.scope), rid)
        await services.pipeline.end_users.admit(req.user)
        body = await _embed(req, services)
        rec.routed_model = str(body["model"])
        rec.prompt_tokens = int(body["usage"]["prompt_tokens"])
        rec.cost_usd = services.pipeline.prices.embedding_cost(rec.routed_model, rec.prompt_tokens)
        # Nothing routed it (the client named the model), so it saved nothing: its baseline is its own cost. Left at
        # 0, the stats' saving (baseline - cost) went negative by what each embedding cost.
        rec.baseline_cost_usd = rec.cost_usd
        return body
    except GatewayError as e:
        rec.status, rec.error_type = e.status, e.type
        raise
    except Exception:
        rec.status, rec.error_type = 500, "server_error"  # a bug: the client gets a 500, so does the record
        raise
    except asyncio.CancelledError:
        # Nothing cancels this route but the server stopping (gateway/front.py answers the client with this 503).
        rec.status, rec.error_type = 503, "server_stopping"
        raise
    finally:
        rec.latency_ms = (time.perf_counter() - started) * 1000
        services.recorder.record(rec)


async def _embed(req: EmbeddingRequest, services: Services) -> dict[str, Any]:
    inputs = [req.input] if isinstance(req.input, str) else req.input
    if not inputs or len(inputs) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(f"'input' must hold 1 to {MAX_EMBEDDING_INPUTS} items.", "input", "invalid_value")
    if (empty := next((i for i, x in enumerate(inputs) if x == ""), None)) is not None:
        # As OpenAI: an embedding of nothing is no answer to anything.
        where = "input" if isinstance(req.input, str) else f"input.{empty}"
        raise InvalidRequest(f"'{where}' is an empty string; there is nothing to embed.", where, "invalid_value")
    cfg = services.config
    name = req.model
    if name not in cfg.embedding_names and (target := cfg.alias(name)) in cfg.embedding_names:
        name = target  # the operator's mapping (`aliases`); the record keeps what the app asked for
    if name != MINILM_NAME:
        spec = next((e for e in cfg.embedding_models if e.name == name), None)
        if spec is None:
            aliases = sorted(a for a, t in cfg.aliases.items() if t in cfg.embedding_names)
            names = [MINILM_NAME, *(e.name for e in cfg.embedding_models), *aliases]
            raise NotFound(
                f"The embedding model '{req.model}' does not exist. Use one of: {', '.join(names)}.",
                "model",
                "model_not_found",
            )
        params = {k: v for k, v in (("dimensions", req.dimensions), ("encoding_format", req.encoding_format)) if v}
        try:
            body = await services.provider.embed(spec, [str(x) for x in inputs], params)
        except UpstreamError as e:
            raise UpstreamFailed(f"The embedding model {e.model} failed: HTTP {e.status}.") from e
        body["model"] = spec.name
        return body
    if not all(isinstance(x, str) for x in inputs):
        raise InvalidRequest(f"'{MINILM_NAME}' takes text input, not token ids.", "input", "invalid_value")
    if req.dimensions not in (None, services.classifier.encoder.dim):
        raise InvalidRequest(
            f"'{MINILM_NAME}' has {services.classifier.encoder.dim} dimensions.", "dimensions", "invalid_value"
        )
    texts = [str(x) for x in inputs]
    counts = await services.classifier.count_tokens(texts)
    limit = services.classifier.encoder.max_tokens
    if not req.truncate and (long := next((i for i, n in enumerate(counts) if n > limit), None)) is not None:
        # As OpenAI and Text Embeddings Inference answer a text past the model's window. The encoder would read the
        # first `limit` tokens and return their embedding as the text's, and a search index built on it would
        # miss everything past them without a sign.
        where = "input" if isinstance(req.input, str) else f"input.{long}"
        raise InvalidRequest(
            f"'{where}' is {counts[long]} tokens long; '{MINILM_NAME}' reads at most {limit}, so its embedding would "
            f"be of the first {limit} only. Send shorter texts, or `truncate: true` to embed the first {limit}.",
            where,
            "context_length_exceeded",
        )
    vecs = await services.classifier.embed(texts)
    tokens = sum(min(n, limit) for n in counts)  # what the encoder read
    data = [
        {"object": "embedding", "index": i, "embedding": _b64(v) if req.encoding_format == "base64" else v}
        for i, v in enumerate(vecs)
    ]
    return {
        "object": "list",
        "data": data,
        "model": MINILM_NAME,
        "id": f"emb-{uuid.uuid4().hex[:12]}",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
