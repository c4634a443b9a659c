"""What a chat request's `model` field names, under the configuration and the caller's key: a policy to route
by, one of the configured models, or an alias of either; anything else is a 404 that lists the names there are."""

from __future__ import annotations

from gateway.errors import NotFound, PermissionDenied
from router.policy import ApiKey, Policy, TiergateConfig


def resolve(cfg: TiergateConfig, model: str, api_key: ApiKey | None = None) -> tuple[str, Policy, str | None]:
    """(policy name, policy, concrete model or None) for the request's `model` field, as the caller's key
    allows: a key held to some policies routes `auto` and named models by the first of them."""
    home = api_key.home_policy(cfg.default_policy) if api_key else cfg.default_policy
    if model == "auto":
        return home, cfg.policies[home], None
    if cfg.aliases and model not in cfg.policies and (target := cfg.alias(model)) is not None:
        # The operator's mapping, not the app's choice: a policy this key may not use means its own, as `auto`.
        if target in cfg.policies and api_key and not api_key.may_use(target):
            return home, cfg.policies[home], None
        model = target  # what the app asked for stays the record's requested_model
    if model in cfg.policies:
        if api_key and not api_key.may_use(model):
            raise PermissionDenied(
                f"The key '{api_key.name}' may use the policies {api_key.policies}, not '{model}'.",
                "model",
                "policy_not_allowed",
            )
        return model, cfg.policies[model], None
    if cfg.model(model) is not None:
        return home, cfg.policies[home], model
    if model in cfg.embedding_names:
        raise NotFound(
            f"'{model}' is an embedding model: it serves /v1/embeddings, not chat.", "model", "model_not_found"
        )
    exact = sorted(a for a in cfg.aliases if a not in {p for p, _ in cfg.alias_patterns})
    known = ["auto", *sorted(cfg.policies), *sorted(m.name for m in cfg.models), *exact]
    raise NotFound(f"The model '{model}' does not exist. Use one of: {', '.join(known)}.", "model", "model_not_found")
