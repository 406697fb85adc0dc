"""Every model call the operator makes is counted: outcome, tokens, cost, time."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from duet_agents.llm.base import LLMBadOutput, LLMError, Message, Usage
from duet_agents.llm.fake import Reply, ScriptedChatModel
from duet_operator import metrics
from duet_operator.llm_metrics import Instrumented

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Answer(BaseModel):
    text: str


def value(name: str, **labels: str) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return found or 0.0


async def test_calls_are_counted_by_outcome_with_tokens_and_cost() -> None:
    labels = {"agent": "planner", "provider": "openai", "model": "gpt-4.1-mini"}
    before_ok = value("duet_llm_requests_total", **labels, outcome="ok")
    before_bad = value("duet_llm_requests_total", **labels, outcome="bad_output")
    before_in = value("duet_llm_tokens_total", **labels, direction="input")
    before_cost = value("duet_llm_cost_usd_total", **labels)
    bad = LLMBadOutput(
        "not the schema",
        provider="openai",
        model="gpt-4.1-mini",
        usage=Usage(input_tokens=500_000, output_tokens=0),
        raw="{",
        problems=["text: missing"],
    )
    fake = ScriptedChatModel(
        [Reply({"text": "hi"}, Usage(input_tokens=1_000_000, output_tokens=1_000_000)), bad],
        provider="openai",
        model="gpt-4.1-mini",
    )
    model = Instrumented(fake, "planner")
    question = [Message(role="user", content="q")]
    answer = await model.structured(system="s", messages=question, schema=Answer, tool_name="t")
    assert answer.value == Answer(text="hi")
    with pytest.raises(LLMError):
        await model.structured(system="s", messages=question, schema=Answer, tool_name="t")

    assert value("duet_llm_requests_total", **labels, outcome="ok") == before_ok + 1
    assert value("duet_llm_requests_total", **labels, outcome="bad_output") == before_bad + 1
    # A failed call still spent its input tokens, and they are paid for.
    assert value("duet_llm_tokens_total", **labels, direction="input") == before_in + 1_500_000
    # gpt-4.1-mini: $0.40 in and $1.60 out per million tokens.
    assert value("duet_llm_cost_usd_total", **labels) == pytest.approx(
        before_cost + 0.40 + 1.60 + 0.20
    )
    assert value("duet_llm_request_duration_seconds_count", **labels) >= 2


def test_token_prices_are_configurable_model_by_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal  # noqa: PLC0415

    from duet_operator.settings import OperatorSettings  # noqa: PLC0415

    monkeypatch.setenv(
        "DUET_LLM_PRICES",
        '{"models": {"openai": {"local-llama": {"inputUSDPerMTok": 0, "outputUSDPerMTok": 0},'
        ' "gpt-4.1-mini": {"inputUSDPerMTok": 1, "outputUSDPerMTok": 2}}}}',
    )
    prices = OperatorSettings().token_prices()
    local = prices.price("openai", "local-llama")
    assert local is not None
    assert local.input_usd_per_mtok == 0
    mini = prices.price("openai", "gpt-4.1-mini")
    assert mini is not None
    assert mini.output_usd_per_mtok == Decimal(2), "an override wins"
    assert prices.price("anthropic", "claude-sonnet-4-5") is not None, "the rest are kept"
