"""What model calls cost: tokens times a price table, in exact Decimal arithmetic.

Prices are USD per million tokens, per provider and model. The defaults are the providers'
published list prices (standard tier, no caching or batch discount) as of late 2026; a
deployment overrides or extends them (`LLMPrices.model_validate(...)`, e.g. from the chart).
A model missing from the table (a local vLLM or Ollama model, a new release) costs 0 and the
charge says its price is unknown, so a dashboard can tell "free" from "not priced".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import Field

from duet_agents.llm.base import Usage
from duet_agents.schema import CamelModel

MILLION = Decimal(1_000_000)
# Snapshot names carry a date after the alias they are priced as: claude-sonnet-4-5-20250929,
# gpt-4.1-2025-04-14.
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")


class TokenPrice(CamelModel):
    input_usd_per_mtok: Decimal = Field(ge=0, alias="inputUSDPerMTok")
    output_usd_per_mtok: Decimal = Field(ge=0, alias="outputUSDPerMTok")


class LLMPrices(CamelModel):
    """provider -> model -> price, e.g. `{anthropic: {claude-sonnet-5-5: {inputUSDPerMTok: 2,
    outputUSDPerMTok: 10}}}`."""

    models: dict[str, dict[str, TokenPrice]] = Field(default_factory=dict)

    def price(self, provider: str, model: str) -> TokenPrice | None:
        """The price of `model`, or of the alias a dated snapshot of it belongs to."""
        table = self.models.get(provider, {})
        return table.get(model) or table.get(_SNAPSHOT.sub("", model))

    def merged(self, other: LLMPrices) -> LLMPrices:
        """These prices with `other`'s added or overriding, model by model."""
        models = {provider: dict(table) for provider, table in self.models.items()}
        for provider, table in other.models.items():
            models.setdefault(provider, {}).update(table)
        return LLMPrices(models=models)


def _prices(table: dict[str, tuple[str, str]]) -> dict[str, TokenPrice]:
    return {
        model: TokenPrice(input_usd_per_mtok=Decimal(i), output_usd_per_mtok=Decimal(o))
        for model, (i, o) in table.items()
    }


DEFAULT_LLM_PRICES = LLMPrices(
    models={
        # platform.claude.com "Models overview" and each model's page.
        "anthropic": _prices(
            {
                "claude-fable-5-1": ("10", "50"),
                "claude-opus-5-5": ("4", "20"),
                "claude-opus-5": ("5", "25"),
                "claude-sonnet-5-5": ("2", "10"),
                "claude-sonnet-5": ("2", "10"),
                "claude-opus-4-5": ("5", "25"),
                "claude-sonnet-4-5": ("3", "15"),
                "claude-haiku-4-5": ("1", "5"),
            }
        ),
        # OpenAI's API pricing page (standard tier).
        "openai": _prices(
            {
                "gpt-5": ("1.25", "10"),
                "gpt-5-mini": ("0.25", "2"),
                "gpt-5-nano": ("0.05", "0.40"),
                "gpt-4.1": ("2", "8"),
                "gpt-4.1-mini": ("0.40", "1.60"),
                "gpt-4.1-nano": ("0.10", "0.40"),
                "gpt-4o": ("2.50", "10"),
                "gpt-4o-mini": ("0.15", "0.60"),
                "o3": ("2", "8"),
                "o4-mini": ("1.10", "4.40"),
            }
        ),
    }
)


@dataclass(frozen=True)
class Charge:
    """One call's tokens and cost."""

    provider: str
    model: str
    usage: Usage
    cost_usd: Decimal
    price_known: bool


def charge(
    provider: str, model: str, usage: Usage, prices: LLMPrices = DEFAULT_LLM_PRICES
) -> Charge:
    price = prices.price(provider, model)
    if price is None:
        return Charge(provider, model, usage, Decimal(0), price_known=False)
    cost = (
        usage.input_tokens * price.input_usd_per_mtok
        + usage.output_tokens * price.output_usd_per_mtok
    ) / MILLION
    return Charge(provider, model, usage, cost, price_known=True)


@dataclass
class Ledger:
    """The sum of several calls: every attempt of a plan, repairs included."""

    prices: LLMPrices = DEFAULT_LLM_PRICES
    charges: list[Charge] = field(default_factory=list)

    def add(self, provider: str, model: str, usage: Usage) -> Charge:
        item = charge(provider, model, usage, self.prices)
        self.charges.append(item)
        return item

    @property
    def calls(self) -> int:
        return len(self.charges)

    @property
    def usage(self) -> Usage:
        return sum((c.usage for c in self.charges), Usage())

    @property
    def cost_usd(self) -> Decimal:
        return sum((c.cost_usd for c in self.charges), Decimal(0))

    @property
    def price_known(self) -> bool:
        """False when any call was of a model without a price (its cost counted as 0)."""
        return all(c.price_known for c in self.charges)
