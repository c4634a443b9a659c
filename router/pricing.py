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
        self.unpriced: list[str] = []

        def priced(name: str, own: Price | None, litellm_model: str) -> Price:
            found = own or reference.get(litellm_model) or reference.get(litellm_model.split("/", 1)[-1])
            if found is None:
                self.unpriced.append(name)
                found = Price(input_per_mtok=0.0, output_per_mtok=0.0)
            return found

        self._prices = {m.name: priced(m.name, m.price, m.litellm_model) for m in config.models}
        # Apart: an embedding model may share a chat model's name (they answer different endpoints).
        self._embedding = {e.name: priced(e.name, e.price, e.litellm_model) for e in config.embedding_models}

    def price(self, model: str) -> Price:
        return self._prices[model]

    def cost(self, model: str, usage: Usage) -> float:
        return cost_usd(self._prices[model], usage)

    def embedding_cost(self, model: str, tokens: int) -> float:
        """What embedding `tokens` input tokens with a configured embedding model costs; 0 for one not configured
        (the in-process MiniLM, which runs on the gateway's own CPU)."""
        price = self._embedding.get(model)
        return 0.0 if price is None else cost_usd(price, Usage(tokens, 0))
