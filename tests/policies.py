"""Policy builders shared by the tests."""

from __future__ import annotations

from typing import Any

from router.policy import TiergateConfig


def config_dict(**policy: Any) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "local",
                "litellm_model": "openai/local",
                "tier": 0,
                "local": True,
                "price": {"input_per_mtok": 0.0, "output_per_mtok": 0.0},
                "capabilities": {"context_window": 2048},
            },
            {
                "name": "mid",
                "litellm_model": "openai/mid",
                "tier": 1,
                "price": {"input_per_mtok": 0.5, "output_per_mtok": 1.5},
                "capabilities": {"tools": True, "json_mode": True, "context_window": 16000},
            },
            {
                "name": "mid-b",
                "litellm_model": "openai/mid-b",
                "tier": 1,
                "price": {"input_per_mtok": 0.6, "output_per_mtok": 1.5},
                "capabilities": {"context_window": 16000},
            },
            {
                "name": "big",
                "litellm_model": "openai/big",
                "tier": 2,
                "price": {"input_per_mtok": 5.0, "output_per_mtok": 15.0},
                "capabilities": {"tools": True, "vision": True, "json_mode": True, "context_window": 128000},
            },
        ],
        "policies": {"default": {"thresholds": [0.35, 0.7], "baseline_model": "big", **policy}},
    }


def config(**policy: Any) -> TiergateConfig:
    return TiergateConfig.model_validate(config_dict(**policy))
