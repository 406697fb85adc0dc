"""The model planner: a LangGraph that asks a chat model for a design and trusts none of it.

    context -> propose -> validate -> accept
                  ^          |
                  +- repair -+ (at most policy.max_repairs rounds)
                             +-> fallback (the built-in design, with the reason)

`context` computes the built-in design first: it is the baseline the model starts from, the
bounds' floor and the fallback, and when the built-in planner refuses the request (a budget
below the cheapest design) its error is the answer, since there is nothing to fall back to.
A model failure of any kind (timeout, rate limit, refusal, bad output, broken rules after
the repairs) ends in `fallback`, never in an exception. Every attempt's tokens are counted.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict

from duet_agents.llm.base import ChatModel, LLMBadOutput, LLMError, Message, Usage
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, Ledger, LLMPrices
from duet_agents.planner import capacity, prompts
from duet_agents.planner.models import PlannerInfo, PlanRequest, PlatformDesign, PriceTable
from duet_agents.planner.policy import DesignProposal, PlannerPolicy, clean_rationale, review

log = logging.getLogger(__name__)

# A fallback reason goes into status and an Event; the first problems say enough.
MAX_REASON_CHARS = 500


class ModelPlan(BaseModel):
    """The outcome of one model planning: the design to provision and what it cost to get.

    `design.planner` names the model when its proposal was accepted, and `builtin` when the
    built-in design was used instead (`fallback_reason` says why). `provider`, `model`,
    `usage` and `cost_usd` are the model's, whichever design won: the calls were paid for.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    design: PlatformDesign
    provider: str
    model: str
    usage: Usage
    cost_usd: Decimal
    price_known: bool
    attempts: int
    fallback_reason: str | None
    # One word for metrics: the model's failure kind (timeout, rate_limited, unavailable,
    # rejected, bad_output, error) or invalid_design (it kept breaking the rules).
    fallback_kind: str | None = None

    @property
    def accepted(self) -> bool:
        return self.fallback_reason is None


async def plan_with_model(
    request: PlanRequest,
    model: ChatModel,
    *,
    prices: PriceTable | None = None,
    policy: PlannerPolicy | None = None,
    llm_prices: LLMPrices | None = None,
    lessons: Sequence[Mapping[str, Any]] = (),
) -> ModelPlan:
    """A design for `request` proposed by `model` and checked by Duet, or the built-in design.

    Raises the built-in planner's PlanningError (BudgetInfeasibleError) only when the built-in
    planner itself refuses the request; every model failure falls back instead. The caller
    owns `model` (and closes it).
    """
    context = PlanContext(
        request=request,
        model=model,
        prices=prices or PriceTable(),
        policy=policy or PlannerPolicy(),
        lessons=tuple(lessons),
    )
    state = await _GRAPH.ainvoke({"attempts": 0, "usages": []}, context=context)
    ledger = Ledger(prices=llm_prices or DEFAULT_LLM_PRICES)
    for usage in state["usages"]:
        ledger.add(model.provider, model.model, usage)
    return ModelPlan(
        design=state["design"],
        provider=model.provider,
        model=model.model,
        usage=ledger.usage,
        cost_usd=ledger.cost_usd,
        price_known=ledger.price_known,
        attempts=state["attempts"],
        fallback_reason=state.get("fallback_reason"),
        fallback_kind=state.get("fallback_kind"),
    )


@dataclass(frozen=True)
class PlanContext:
    """What every node reads and none changes (LangGraph's run context)."""

    request: PlanRequest
    model: ChatModel
    prices: PriceTable
    policy: PlannerPolicy
    # The platform memory's lessons, as `duet_agents.memory.lessons_context` gives them.
    lessons: tuple[Mapping[str, Any], ...] = ()


class PlanState(TypedDict, total=False):
    baseline: PlatformDesign
    messages: list[Message]
    proposal: DesignProposal | None
    raw: str
    problems: list[str]
    cost_usd: float
    attempts: int
    usages: Annotated[list[Usage], operator.add]  # one per model call, failed ones too
    fallback_reason: str | None
    fallback_kind: str | None
    design: PlatformDesign


# -- nodes -----------------------------------------------------------------------------------------


def build_context(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    ctx = runtime.context
    baseline = capacity.plan(ctx.request, ctx.prices)  # its refusal is the caller's answer
    first = prompts.planning_data(ctx.request, baseline, ctx.policy, ctx.prices, ctx.lessons)
    return {"baseline": baseline, "messages": [Message(role="user", content=first)]}


async def propose(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    ctx = runtime.context
    attempts = state["attempts"] + 1
    try:
        answer = await ctx.model.structured(
            system=prompts.system_prompt(ctx.policy),
            messages=state["messages"],
            schema=DesignProposal,
            tool_name=prompts.TOOL_NAME,
        )
    except LLMBadOutput as e:
        return {
            "attempts": attempts,
            "usages": [e.usage],
            "proposal": None,
            "raw": e.raw,
            "problems": e.problems,
        }
    except LLMError as e:
        return {
            "attempts": attempts,
            "usages": [e.usage],
            "fallback_reason": f"{e.kind}: {e}",
            "fallback_kind": e.kind.replace(" ", "_"),
        }
    except Exception as e:  # a provider's bug must not cost the platform its design
        log.warning("chat model %r failed unexpectedly", ctx.model, exc_info=True)
        reason = f"unexpected error from the model client: {type(e).__name__}"
        return {
            "attempts": attempts,
            "usages": [Usage()],
            "fallback_reason": reason,
            "fallback_kind": "error",
        }
    return {
        "attempts": attempts,
        "usages": [answer.usage],
        "proposal": answer.value,
        "raw": answer.raw,
        "problems": [],
    }


def validate(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    proposal = state.get("proposal")
    if proposal is None:
        return {}  # the schema already refused it: its problems are in the state
    ctx = runtime.context
    verdict = review(
        proposal,
        request=ctx.request,
        baseline=state["baseline"],
        policy=ctx.policy,
        prices=ctx.prices,
    )
    return {"problems": verdict.problems, "cost_usd": verdict.cost_usd}


def repair(state: PlanState) -> PlanState:
    return {
        "messages": [
            *state["messages"],
            Message(role="assistant", content=prompts.echoed_answer(state.get("raw", ""))),
            Message(role="user", content=prompts.repair_request(state["problems"])),
        ]
    }


def accept(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    ctx = runtime.context
    proposal = state["proposal"]
    assert proposal is not None  # validate routes here only with one
    cost = state["cost_usd"]
    lines = [
        *clean_rationale(proposal.rationale, ctx.policy),
        _cost_line(cost, ctx.prices),
        *_budget_lines(cost, ctx.request),
        f"planner: proposed by the {ctx.model.provider} model {ctx.model.model} (attempt "
        f"{state['attempts']}); Duet checked it against the pins, the policy bounds, the "
        "requirements and the budget, and computed the cost itself",
    ]
    design = PlatformDesign(
        clickhouse=proposal.clickhouse,
        postgres=proposal.postgres,
        estimated_monthly_cost_usd=cost,
        rationale=lines,
        planner=PlannerInfo(provider=ctx.model.provider, model=ctx.model.model),
    )
    return {"design": design}


def fallback(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    ctx = runtime.context
    reason = state.get("fallback_reason") or _rules_broken(state)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    log.info("model planner fell back to the built-in design: %s", reason)
    baseline = state["baseline"]
    note = (
        f"planner: the built-in design; the {ctx.model.provider} model {ctx.model.model} was "
        f"not used: {reason}"
    )
    design = baseline.model_copy(update={"rationale": [*baseline.rationale, note]})
    kind = state.get("fallback_kind") or "invalid_design"
    return {"design": design, "fallback_reason": reason, "fallback_kind": kind}


# -- edges -----------------------------------------------------------------------------------------


def after_propose(state: PlanState) -> Literal["validate", "fallback"]:
    return "fallback" if state.get("fallback_reason") else "validate"


def after_validate(
    state: PlanState, runtime: Runtime[PlanContext]
) -> Literal["accept", "repair", "fallback"]:
    if not state["problems"]:
        return "accept"
    if state["attempts"] <= runtime.context.policy.max_repairs:
        return "repair"
    return "fallback"


def build_graph() -> CompiledStateGraph[PlanState, PlanContext, PlanState, PlanState]:
    graph = StateGraph(PlanState, context_schema=PlanContext)
    graph.add_node("context", build_context)
    graph.add_node("propose", propose)
    graph.add_node("validate", validate)
    graph.add_node("repair", repair)
    graph.add_node("accept", accept)
    graph.add_node("fallback", fallback)
    graph.add_edge(START, "context")
    graph.add_edge("context", "propose")
    graph.add_conditional_edges("propose", after_propose)
    graph.add_conditional_edges("validate", after_validate)
    graph.add_edge("repair", "propose")
    graph.add_edge("accept", END)
    graph.add_edge("fallback", END)
    return graph.compile()


# -- rationale -------------------------------------------------------------------------------------


def _rules_broken(state: PlanState) -> str:
    problems = state.get("problems", [])
    return (
        f"its design still broke {len(problems)} rule(s) after {state['attempts']} attempt(s): "
        + "; ".join(problems[:3])
    )


def _cost_line(cost: float, prices: PriceTable) -> str:
    return (
        f"cost: ${cost:,.2f}/month, computed by Duet at ${prices.cpu_core_month_usd:g}/core, "
        f"${prices.memory_gib_month_usd:g}/GiB memory, ${prices.storage_gib_month_usd:g}/GiB "
        "storage a month"
    )


def _budget_lines(cost: float, request: PlanRequest) -> list[str]:
    if request.budget is None:
        return []
    return [f"budget: ${cost:,.2f}/month is within ${request.budget.monthly_usd:,.2f}"]


_GRAPH = build_graph()
