"""Prometheus metrics of model calls, the same `duet_llm_*` names in every process that calls one.

The operator (planner, healer) and each query server keep registries of their own; both
build an `LLMMetrics` in theirs and wrap their `ChatModel` in `Instrumented`, which counts
each call by outcome, its tokens and its cost (from the price table the callers' own
accounting uses) and times it. Callers of the wrapped model see an ordinary `ChatModel`.
"""

from __future__ import annotations

import time
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel

from duet_agents.llm.base import ChatModel, Completion, LLMError, Message, Usage
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, LLMPrices, charge

T = TypeVar("T", bound=BaseModel)

LABELS = ["agent", "provider", "model"]


class LLMMetrics:
    """The `duet_llm_*` families, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "duet_llm_requests_total",
            "Calls to a chat model, by agent, provider, model and outcome (ok, timeout,"
            " rate_limited, unavailable, rejected, bad_output, error).",
            [*LABELS, "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "duet_llm_tokens_total",
            "Tokens the calls consumed, by direction (input, output).",
            [*LABELS, "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "duet_llm_cost_usd_total",
            "What the calls cost, from the price table (0 for a model without a price).",
            LABELS,
            registry=registry,
        )
        self.duration = Histogram(
            "duet_llm_request_duration_seconds",
            "Time of one call, the SDK's retries included.",
            LABELS,
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120),
            registry=registry,
        )


class Instrumented:
    """`model`, counted in `metrics` under `agent` (planner, healer, query)."""

    def __init__(
        self,
        model: ChatModel,
        agent: str,
        metrics: LLMMetrics,
        prices: LLMPrices = DEFAULT_LLM_PRICES,
    ) -> None:
        self.inner = model
        self.agent = agent
        self.metrics = metrics
        self.prices = prices

    def __repr__(self) -> str:
        return f"Instrumented({self.inner!r}, agent={self.agent!r})"

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
        self.metrics.requests.labels(*labels, outcome).inc()
        self.metrics.duration.labels(*labels).observe(seconds)
        self.metrics.tokens.labels(*labels, "input").inc(usage.input_tokens)
        self.metrics.tokens.labels(*labels, "output").inc(usage.output_tokens)
        cost = charge(self.provider, self.model, usage, self.prices).cost_usd
        self.metrics.cost.labels(*labels).inc(float(cost))

    async def aclose(self) -> None:
        await self.inner.aclose()
