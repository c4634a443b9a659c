"""Prices per model and what a request costs; the table is built by the gateway and handed in, never fetched here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from router.policy import Price, TiergateConfig


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of prompt_tokens, those the provider read from its prompt cache


def cost_usd(price: Price, usage: Usage) -> float:
    """Dollars for these token counts at this price; cached prompt tokens at the cached-input price if it has one."""
    cached = min(usage.cached_tokens, usage.prompt_tokens) if price.cached_input_per_mtok is not None else 0
    return (
        (usage.prompt_tokens - cached) * price.input_per_mtok
        + cached * (price.cached_input_per_mtok or 0.0)
        + usage.completion_tokens * price.output_per_mtok
    ) / 1e6


class PriceTable:
    """Prices by Tiergate model name: the policy's own price wins, else the reference table (litellm's).

    A model with neither is priced at zero and listed in `unpriced`, so the gap is visible instead of silent.
    """

    def __init__(self, config: TiergateConfig, reference: Mapping[str, Price]) -> None:
        self._prices: dict[str, Price] = {}
        self.unpriced: list[str] = []
        for m in config.models:
            found = m.price or reference.get(m.litellm_model) or reference.get(m.litellm_model.split("/", 1)[-1])
            if found is None:
                self.unpriced.append(m.name)
                found = Price(input_per_mtok=0.0, output_per_mtok=0.0)
            self._prices[m.name] = found

    def price(self, model: str) -> Price:
        return self._prices[model]

    def cost(self, model: str, usage: Usage) -> float:
        return cost_usd(self._prices[model], usage)
