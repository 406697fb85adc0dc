"""Token and cost accounting: exact Decimal prices per provider and model, and their sums."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from duet_agents.llm.base import Usage
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, Ledger, LLMPrices, charge


def test_a_charge_is_tokens_times_the_price_per_million_exactly() -> None:
    usage = Usage(input_tokens=1_234_567, output_tokens=89_012)
    billed = charge("anthropic", "claude-sonnet-4-5", usage)
    # 1.234567 MTok x $3 + 0.089012 MTok x $15
    assert billed.cost_usd == Decimal("3.703701") + Decimal("1.33518")
    assert billed.cost_usd == Decimal("5.038881")
    assert billed.price_known


@pytest.mark.parametrize(
    ("provider", "model", "alias"),
    [
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
    ],
)
def test_a_dated_snapshot_costs_what_its_alias_costs(provider: str, model: str, alias: str) -> None:
    assert DEFAULT_LLM_PRICES.price(provider, model) == DEFAULT_LLM_PRICES.price(provider, alias)
    assert DEFAULT_LLM_PRICES.price(provider, model) is not None


def test_an_unknown_model_costs_zero_and_says_its_price_is_unknown() -> None:
    billed = charge("openai", "llama3.1:8b", Usage(input_tokens=10_000, output_tokens=500))
    assert billed.cost_usd == 0
    assert not billed.price_known
    assert billed.usage.total_tokens == 10_500


def test_a_model_is_priced_under_its_own_provider_only() -> None:
    assert DEFAULT_LLM_PRICES.price("openai", "claude-sonnet-4-5") is None


def test_the_ledger_sums_tokens_and_cost_over_every_call() -> None:
    ledger = Ledger()
    ledger.add("openai", "gpt-4o-mini", Usage(input_tokens=1000, output_tokens=100))
    ledger.add("openai", "gpt-4o-mini", Usage(input_tokens=3000, output_tokens=700))
    assert ledger.calls == 2
    assert ledger.usage == Usage(input_tokens=4000, output_tokens=800)
    # 4000 x $0.15 / 1M + 800 x $0.60 / 1M
    assert ledger.cost_usd == Decimal("0.0006") + Decimal("0.00048")
    assert ledger.price_known


def test_one_unpriced_call_makes_the_sum_a_lower_bound() -> None:
    ledger = Ledger()
    ledger.add("openai", "gpt-4o-mini", Usage(input_tokens=4000, output_tokens=800))
    ledger.add("openai", "my-local-model", Usage(input_tokens=5, output_tokens=5))
    assert not ledger.price_known
    assert ledger.cost_usd == Decimal("0.00108")
    assert ledger.usage.total_tokens == 4810


def test_an_empty_ledger_is_zero() -> None:
    ledger = Ledger()
    assert (ledger.calls, ledger.usage, ledger.cost_usd, ledger.price_known) == (
        0,
        Usage(),
        Decimal(0),
        True,
    )


def test_prices_load_from_configuration_and_override_the_defaults() -> None:
    configured = LLMPrices.model_validate(
        {
            "models": {
                "openai": {
                    "glm-4.6": {"inputUSDPerMTok": 0.6, "outputUSDPerMTok": "2.2"},
                    "gpt-4o": {"inputUSDPerMTok": 1, "outputUSDPerMTok": 4},
                }
            }
        }
    )
    prices = DEFAULT_LLM_PRICES.merged(configured)
    glm = charge(
        "openai", "glm-4.6", Usage(input_tokens=1_000_000, output_tokens=1_000_000), prices
    )
    assert glm.cost_usd == Decimal("2.8")  # 0.6 read as Decimal("0.6"), not a binary float
    gpt4o = prices.price("openai", "gpt-4o")
    assert gpt4o is not None
    assert gpt4o.input_usd_per_mtok == 1
    assert prices.price("anthropic", "claude-haiku-4-5") is not None  # defaults kept


@pytest.mark.parametrize(
    "entry",
    [
        {"inputUSDPerMTok": -1, "outputUSDPerMTok": 1},
        {"inputUSDPerMTok": 1, "outputUSDPerMTok": 1, "cachedUSDPerMTok": 1},
        {"inputUSDPerMTok": 1},
    ],
)
def test_a_malformed_price_is_refused(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LLMPrices.model_validate({"models": {"openai": {"m": entry}}})
