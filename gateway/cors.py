"""CORS for browser apps (TIERGATE_CORS_ORIGINS): Starlette's middleware around the whole app, so the chat and
Responses endpoints, which gateway/front.py serves ahead of FastAPI, answer preflights and carry the headers too.

Off unless configured: a gateway that lets any web page call it with a key the page holds is the operator's
choice to make (LiteLLM's proxy allows every origin by default). Credentials are never allowed: Tiergate's keys
travel in the Authorization header, which a page sets itself, never in cookies a browser would attach for it.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

# What an app in a browser may read of an answer: without these, fetch() hides every header but a handful.
EXPOSED = [
    "x-request-id",
    "server-timing",
    "retry-after",
    *(f"x-ratelimit-{what}-{unit}" for what in ("limit", "remaining", "reset") for unit in ("requests", "tokens")),
    *(
        f"x-tiergate-{name}"
        for name in (
            "model",
            "tier",
            "policy",
            "score",
            "cost-usd",
            "baseline-cost-usd",
            "degraded",
            "fallbacks",
            "private-data",
            "cache",
            "cache-match",
            "cascade",
            "draft-confidence",
        )
    ),
]


def origins(setting: str | None) -> list[str]:
    """The allowed origins of a TIERGATE_CORS_ORIGINS value: comma-separated, `*` for any; empty for none."""
    return [o.strip().rstrip("/") for o in (setting or "").split(",") if o.strip()]


def with_cors(app: ASGIApp, allowed: list[str]) -> ASGIApp:
    """`app` answering browsers from `allowed` origins (as is, when there are none)."""
    if not allowed:
        return app
    return CORSMiddleware(
        app,
        allow_origins=allowed,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["*"],  # authorization, content-type, the x-tiergate-* steering headers, the SDK's own
        expose_headers=EXPOSED,
        max_age=600,
    )
