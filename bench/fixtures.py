"""What the benchmarks share: a policy file whose one model is the fake upstream at a given port."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_one_model_config(path: Path, upstream_port: int) -> Path:
    """A policy YAML with one priced OpenAI-compatible model `fast` at the fake upstream; returns the path."""
    cfg = {
        "models": [
            {
                "name": "fast",
                "litellm_model": "openai/fast",
                "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                "tier": 0,
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            }
        ],
        "policies": {"default": {"thresholds": [0.5], "baseline_model": "fast"}},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path
