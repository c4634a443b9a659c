"""GET /v1/models and /v1/models/{id}: routable names (auto, policies, models), each with its tier and whether it
is available now (OpenAI's list and retrieve)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from gateway.auth import checked_key
from gateway.cooldown import CoolingDown
from gateway.deps import Services
from gateway.encoders import MINILM_NAME
from gateway.errors import NotFound
from gateway.openapi import error_docs
from router.policy import ApiKey, ModelSpec, TiergateConfig

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request, services: Services) -> dict[str, Any]:
    return {"object": "list", "data": _entries(services, checked_key(request.scope))}


@router.get(
    "/v1/models/{model_id:path}", responses=error_docs({404: "No model, policy or alias of that name."})
)  # a path: configured names may contain "/" (e.g. "openai/gpt-4o")
async def retrieve_model(model_id: str, request: Request, services: Services) -> dict[str, Any]:
    entries = _entries(services, checked_key(request.scope))
    found = next((e for e in entries if e["id"] == model_id), None)
    if found is None and (target := services.config.alias(model_id)) is not None:  # a name a pattern takes
        found = _alias_entry(model_id, target, services, checked_key(request.scope))
    if found is None:
        known = ", ".join(e["id"] for e in entries)
        raise NotFound(f"The model '{model_id}' does not exist. Use one of: {known}.", "model", "model_not_found")
    return found


def _alias_entry(name: str, target: str, services: Services, api_key: ApiKey | None) -> dict[str, Any]:
    """A name apps use that the policy file maps to a policy or a model (`aliases`)."""
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "tiergate",
        "kind": "alias",
        "routes_to": _routes_to(target, services.config, api_key),
        "available": True,
    }


def _routes_to(target: str, cfg: TiergateConfig, api_key: ApiKey | None) -> str:
    """An alias's target as this caller is routed: a policy its key may not use means the key's own `auto`."""
    if target in cfg.policies and api_key and not api_key.may_use(target):
        return api_key.home_policy(cfg.default_policy)
    return target


def _unset(m: ModelSpec) -> str:
    return "no deployment has its key variable set" if m.deployments else f"{m.api_key_env} is not set"


def _cooling_entry(c: CoolingDown) -> dict[str, Any]:
    """Routing passes the model over until the time given; a request naming it still goes to it."""
    until = datetime.fromtimestamp(c.until_epoch, UTC).isoformat(timespec="seconds")
    return {
        "unavailable_reason": f"cooling down after repeated failures, until {until} (last: {c.reason})",
        "cooldown_until": int(c.until_epoch + 0.999),
    }


def _entries(services: Services, api_key: ApiKey | None) -> list[dict[str, Any]]:
    """What this caller may name: a key held to some policies sees only those, and `auto` as the first of them."""
    cfg = services.config
    down = services.pipeline.unavailable
    cooling = {c.model: c for c in services.pipeline.cooldowns.status()}
    servers = services.pipeline.deployments
    budgets = services.pipeline.budgets.status()
    data: list[dict[str, Any]] = [
        {
            "id": "auto",
            "object": "model",
            "created": 0,
            "owned_by": "tiergate",
            "kind": "policy",
            "policy": api_key.home_policy(cfg.default_policy) if api_key else cfg.default_policy,
            "available": True,
        },
    ]
    for name, pol in sorted(cfg.policies.items()):
        if api_key and not api_key.may_use(name):
            continue
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
        keys = servers.keys(m.name)
        cool = [cooling[k] for k in keys if k in cooling]
        all_cooling = bool(keys) and len(cool) == len(keys)
        budget = budgets.get(m.name)
        over = budget is not None and float(budget["spent_usd"]) >= float(budget["usd"])
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
                "available": m.name not in down and not all_cooling and not over,
                **({"unavailable_reason": _unset(m)} if m.name in down else {}),
                **(_cooling_entry(min(cool, key=lambda c: c.until_epoch)) if all_cooling else {}),
                **({"deployments": len(keys), "deployments_cooling": len(cool)} if m.deployments else {}),
                **({"budget": budget} if budget is not None else {}),
                **({"unavailable_reason": "spent its budget"} if over and m.name not in down else {}),
                # An alias of the same name takes requests for it elsewhere (README: aliases).
                **({"routes_to": _routes_to(cfg.aliases[m.name], cfg, api_key)} if m.name in cfg.aliases else {}),
            }
        )
    patterns = {p for p, _ in cfg.alias_patterns}
    for name, target in cfg.aliases.items():
        if name not in patterns and cfg.model(name) is None:
            data.append(_alias_entry(name, target, services, api_key))
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
