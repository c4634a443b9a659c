"""Policy builders shared by the tests."""

from __future__ import annotations

from typing import Any

from router.policy import TiergateConfig


def _model(name: str, tier: int, price: tuple[float, float], **caps: Any) -> dict[str, Any]:
    return {
        "name": name,
        "litellm_model": f"openai/{name}",
        "tier": tier,
        "price": {"input_per_mtok": price[0], "output_per_mtok": price[1]},
        "capabilities": caps,
    }


def config_dict(**policy: Any) -> dict[str, Any]:
    """Four models: one local at tier 0, two priced differently at tier 1, one at tier 2 with every capability."""
    return {
        "models": [
            {**_model("local", 0, (0.0, 0.0), context_window=2048), "local": True},
            _model("mid", 1, (0.5, 1.5), tools=True, json_mode=True, context_window=16000),
            _model("mid-b", 1, (0.6, 1.5), context_window=16000),
            _model("big", 2, (5.0, 15.0), tools=True, vision=True, json_mode=True, context_window=128000),
        ],
        "policies": {"default": {"thresholds": [0.35, 0.7], "baseline_model": "big", **policy}},
    }


def config(**policy: Any) -> TiergateConfig:
    return TiergateConfig.model_validate(config_dict(**policy))
