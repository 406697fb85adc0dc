"""Prometheus metrics of every model call the operator makes, whatever the agent.

The wrapper and the `duet_llm_*` families are duet_agents.llm.metrics', shared with the query
server (its own process and registry); this one counts in the operator's registry.
"""

from __future__ import annotations

from duet_agents.llm.base import ChatModel
from duet_agents.llm.metrics import Instrumented as _Instrumented
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, LLMPrices
from duet_operator import metrics


class Instrumented(_Instrumented):
    """`model`, counted under `agent` (planner, healer) in the operator's registry."""

    def __init__(
        self, model: ChatModel, agent: str, prices: LLMPrices = DEFAULT_LLM_PRICES
    ) -> None:
        super().__init__(model, agent, metrics.LLM, prices)
