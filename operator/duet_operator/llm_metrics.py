"""Prometheus metrics of every model call the operator makes, whatever the agent.

A `ChatModel` wrapped in `Instrumented` counts each call by outcome, its tokens and its cost
(from the same price table the planner's accounting uses) and times it. The agents package
stays free of Prometheus: it only sees a `ChatModel`.
"""

from __future__ import annotations

import time
from typing import TypeVar

from pydantic import BaseModel

from duet_agents.llm.base import ChatModel, Completion, LLMError, Message, Usage
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, LLMPrices, charge
from duet_operator import metrics

T = TypeVar("T", bound=BaseModel)


class Instrumented:
    """`model`, counted under `agent` (planner, healer, query)."""

    def __init__(
        self, model: ChatModel, agent: str, prices: LLMPrices = DEFAULT_LLM_PRICES
    ) -> None:
        self.inner = model
        self.agent = agent
        self.prices = prices

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def model(self) -> str:
        return self.inner.model

    async def structured(
        self, *, system: str, messages: list[Message], schema: type[T], tool_name: str
    ) -> Completion[T]:
        started = time.perf_counter()
        usage = Usage()
        outcome = "ok"
        try:
            completion = await self.inner.structured(
                system=system, messages=messages, schema=schema, tool_name=tool_name
            )
            usage = completion.usage
            return completion
        except LLMError as e:
            outcome = e.kind.replace(" ", "_")
            usage = e.usage or Usage()
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self._record(outcome, usage, time.perf_counter() - started)

    def _record(self, outcome: str, usage: Usage, seconds: float) -> None:
        labels = (self.agent, self.provider, self.model)
        metrics.LLM_REQUESTS.labels(*labels, outcome).inc()
        metrics.LLM_DURATION.labels(*labels).observe(seconds)
        metrics.LLM_TOKENS.labels(*labels, "input").inc(usage.input_tokens)
        metrics.LLM_TOKENS.labels(*labels, "output").inc(usage.output_tokens)
        cost = charge(self.provider, self.model, usage, self.prices).cost_usd
        metrics.LLM_COST.labels(*labels).inc(float(cost))

    async def aclose(self) -> None:
        await self.inner.aclose()
