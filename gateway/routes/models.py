"""GET /v1/models and /v1/models/{id}: routable names (auto, policies, models), each with its tier and whether it
is available now (OpenAI's list and retrieve)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway.deps import Services
from gateway.encoders import MINILM_NAME
from gateway.errors import NotFound

router = APIRouter()


@router.get("/v1/models")
async def list_models(services: Services) -> dict[str, Any]:
    return {"object": "list", "data": _entries(services)}


@router.get("/v1/models/{model_id:path}")  # a path: configured names may contain "/" (e.g. "openai/gpt-4o")
async def retrieve_model(model_id: str, services: Services) -> dict[str, Any]:
    entries = _entries(services)
    found = next((e for e in entries if e["id"] == model_id), None)
    if found is None:
        known = ", ".join(e["id"] for e in entries)
        raise NotFound(f"The model '{model_id}' does not exist. Use one of: {known}.", "model", "model_not_found")
    return found


def _entries(services: Services) -> list[dict[str, Any]]:
    cfg = services.config
    down = services.pipeline.unavailable
    data: list[dict[str, Any]] = [
        {
            "id": "auto",
            "object": "model",
            "created": 0,
            "owned_by": "tiergate",
            "kind": "policy",
            "policy": cfg.default_policy,
            "available": True,
        },
    ]
    for name, pol in sorted(cfg.policies.items()):
        data.append(
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "tiergate",
                "kind": "policy",
                "description": pol.description,
                "available": True,
            }
        )
    for m in cfg.models:
        data.append(
            {
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "local" if m.local else m.litellm_model.split("/", 1)[0],
                "kind": "chat",
                "tier": m.tier,
                "local": m.local,
                "quantization": m.quantization,
                "available": m.name not in down,
                **({"unavailable_reason": f"{m.api_key_env} is not set"} if m.name in down else {}),
            }
        )
    data.append(
        {
            "id": MINILM_NAME,
            "object": "model",
            "created": 0,
            "owned_by": "tiergate",
            "kind": "embedding",
            "available": True,
            "local": True,
        }
    )
    for e in cfg.embedding_models:
        data.append(
            {
                "id": e.name,
                "object": "model",
                "created": 0,
                "owned_by": e.litellm_model.split("/", 1)[0],
                "kind": "embedding",
                "available": True,
            }
        )
    return data
