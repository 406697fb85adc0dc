"""The model healer: a LangGraph that lets a chat model choose the remedy, within the playbook.

    context -> ask -> check -> accept
      |         ^       |
      |         +repair-+ (one round)
      +-> rules (no choice to make)    check -> rules (model failed: the rules decide)

`context` runs the built-in rules (the baseline and the fallback) and lists the actions whose
preconditions hold, with parameters the playbook computed. The model only picks one of those
names, or none; it never sees or sets a parameter it could stretch. With nothing to choose
from, or any model failure (timeout, refusal, bad output twice, an action it was not
offered), the rules' diagnosis stands, with the reason. Every call's tokens are counted.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict

from duet_agents.healer import prompts
from duet_agents.healer.actions import Limits, Plan
from duet_agents.healer.diagnosis import (
    MAX_DIAGNOSIS_CHARS,
    Diagnosis,
    applicable_plans,
    diagnose_symptom,
)
from duet_agents.healer.evidence import clip
from duet_agents.healer.history import PastDecision
from duet_agents.healer.observations import Observation
from duet_agents.healer.prompts import ActionChoice
from duet_agents.healer.symptoms import Symptom, Thresholds
from duet_agents.llm.base import ChatModel, LLMBadOutput, LLMError, Message, Usage
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, Ledger, LLMPrices

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # the first answer and one repair
MAX_FALLBACK_REASON_CHARS = 300
# A storm of symptoms must not become a storm of model calls: past this many per
# reconcile, the rules decide.
DEFAULT_MAX_MODEL_CALLS = 5


class ModelDiagnosis(BaseModel):
    """One symptom's diagnosis, and what asking the model for it cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    diagnosis: Diagnosis
    provider: str
    model: str
    usage: Usage
    cost_usd: Decimal
    price_known: bool
    attempts: int
    fallback_reason: str | None

    @property
    def chosen_by_model(self) -> bool:
        return self.fallback_reason is None


async def diagnose_with_model(
    observation: Observation,
    symptom: Symptom,
    model: ChatModel,
    *,
    now: datetime,
    thresholds: Thresholds | None = None,
    limits: Limits | None = None,
    history: Sequence[PastDecision] = (),
    llm_prices: LLMPrices | None = None,
) -> ModelDiagnosis:
    """The model's choice for `symptom` among the actions that apply, or the rules' diagnosis.
    Never raises for a model failure. The caller owns `model` (and closes it)."""
    context = HealContext(
        observation=observation,
        symptom=symptom,
        model=model,
        now=now,
        thresholds=thresholds or Thresholds(),
        limits=limits or Limits(),
        history=tuple(history),
    )
    state = await _GRAPH.ainvoke({"attempts": 0, "usages": []}, context=context)
    ledger = Ledger(prices=llm_prices or DEFAULT_LLM_PRICES)
    for usage in state["usages"]:
        ledger.add(model.provider, model.model, usage)
    return ModelDiagnosis(
        diagnosis=state["diagnosis"],
        provider=model.provider,
        model=model.model,
        usage=ledger.usage,
        cost_usd=ledger.cost_usd,
        price_known=ledger.price_known,
        attempts=state["attempts"],
        fallback_reason=state.get("fallback_reason"),
    )


async def diagnose_all_with_model(
    observation: Observation,
    symptoms: Sequence[Symptom],
    model: ChatModel,
    *,
    now: datetime,
    thresholds: Thresholds | None = None,
    limits: Limits | None = None,
    history: Sequence[PastDecision] = (),
    llm_prices: LLMPrices | None = None,
    max_model_calls: int = DEFAULT_MAX_MODEL_CALLS,
) -> list[ModelDiagnosis]:
    """`diagnose_with_model` for each symptom, in order, asking the model about the first
    `max_model_calls` only; the rest get the rules' diagnosis. Pass only symptoms that need a
    new decision (not those already recorded), so that the model is asked once per symptom."""
    results = []
    for index, symptom in enumerate(symptoms):
        if index < max_model_calls:
            results.append(
                await diagnose_with_model(
                    observation,
                    symptom,
                    model,
                    now=now,
                    thresholds=thresholds,
                    limits=limits,
                    history=history,
                    llm_prices=llm_prices,
                )
            )
            continue
        rules = diagnose_symptom(
            observation, symptom, now=now, thresholds=thresholds, limits=limits, history=history
        )
        results.append(
            ModelDiagnosis(
                diagnosis=rules,
                provider=model.provider,
                model=model.model,
                usage=Usage(),
                cost_usd=Decimal(0),
                price_known=True,
                attempts=0,
                fallback_reason=f"more than {max_model_calls} symptoms at once: the rules decide",
            )
        )
    return results


@dataclass(frozen=True)
class HealContext:
    """What every node reads and none changes (LangGraph's run context)."""

    observation: Observation
    symptom: Symptom
    model: ChatModel
    now: datetime
    thresholds: Thresholds
    limits: Limits
    history: tuple[PastDecision, ...]


class HealState(TypedDict, total=False):
    rules: Diagnosis
    offered: list[Plan]
    messages: list[Message]
    choice: ActionChoice | None
    raw: str
    problem: str | None
    attempts: int
    usages: Annotated[list[Usage], operator.add]  # one per model call, failed ones too
    fallback_reason: str | None
    diagnosis: Diagnosis


# -- nodes -----------------------------------------------------------------------------------------


def build_context(state: HealState, runtime: Runtime[HealContext]) -> HealState:
    ctx = runtime.context
    rules = diagnose_symptom(
        ctx.observation,
        ctx.symptom,
        now=ctx.now,
        thresholds=ctx.thresholds,
        limits=ctx.limits,
        history=ctx.history,
    )
    offered = applicable_plans(ctx.observation, ctx.symptom, ctx.limits)
    if not offered:
        return {"rules": rules, "offered": [], "fallback_reason": "no playbook action applies"}
    first = prompts.case_data(ctx.symptom, rules, offered)
    return {"rules": rules, "offered": offered, "messages": [Message(role="user", content=first)]}


async def ask(state: HealState, runtime: Runtime[HealContext]) -> HealState:
    ctx = runtime.context
    attempts = state["attempts"] + 1
    try:
        answer = await ctx.model.structured(
            system=prompts.SYSTEM_PROMPT,
            messages=state["messages"],
            schema=ActionChoice,
            tool_name=prompts.TOOL_NAME,
        )
    except LLMBadOutput as e:
        problem = "; ".join(e.problems) or e.detail
        return {
            "attempts": attempts,
            "usages": [e.usage],
            "choice": None,
            "raw": e.raw,
            "problem": f"the answer does not match the tool's schema: {problem}",
        }
    except LLMError as e:
        return {"attempts": attempts, "usages": [e.usage], "fallback_reason": f"{e.kind}: {e}"}
    except Exception as e:  # a provider's bug must not stop the healing
        log.warning("chat model %r failed unexpectedly", ctx.model, exc_info=True)
        reason = f"unexpected error from the model client: {type(e).__name__}"
        return {"attempts": attempts, "usages": [Usage()], "fallback_reason": reason}
    return {
        "attempts": attempts,
        "usages": [answer.usage],
        "choice": answer.value,
        "raw": answer.raw,
        "problem": None,
    }


def check(state: HealState) -> HealState:
    choice = state.get("choice")
    if choice is None or choice.action is None:
        return {}  # a schema problem is already in the state; "none" is always allowed
    offered = {plan.action for plan in state["offered"]}
    if choice.action not in offered:
        return {"problem": f"{choice.action} was not offered (its preconditions do not hold)"}
    return {}


def repair(state: HealState) -> HealState:
    return {
        "messages": [
            *state["messages"],
            Message(role="assistant", content=prompts.echoed_answer(state.get("raw", ""))),
            Message(
                role="user",
                content=prompts.repair_request(state.get("problem") or "", state["offered"]),
            ),
        ]
    }


def accept(state: HealState, runtime: Runtime[HealContext]) -> HealState:
    ctx = runtime.context
    choice = state["choice"]
    assert choice is not None  # check routes here only with one
    plans = {plan.action: plan for plan in state["offered"]}
    chosen = plans.get(choice.action) if choice.action else None
    by = f"{ctx.model.provider}/{ctx.model.model}"
    offered = ", ".join(plans)
    verdict = f"Proposed: {chosen.action}" if chosen else "Proposed: no action"
    text = (
        f"{ctx.symptom.reason}. {clip(choice.reason, prompts.MAX_REASON_CHARS)} {verdict} "
        f"(chosen by the {ctx.model.provider} model {ctx.model.model} among {offered}; Duet "
        f"computed the parameters)."
    )
    diagnosis = Diagnosis(
        symptom=ctx.symptom,
        text=clip(text, MAX_DIAGNOSIS_CHARS),
        action=chosen.action if chosen else None,
        parameters=chosen.parameters if chosen else {},
        decided_by=by,
    )
    return {"diagnosis": diagnosis}


def fallback(state: HealState, runtime: Runtime[HealContext]) -> HealState:
    reason = state.get("fallback_reason") or (
        f"no usable answer after {state['attempts']} attempt(s): {state.get('problem')}"
    )
    reason = clip(reason, MAX_FALLBACK_REASON_CHARS)
    if state.get("attempts"):
        log.info("model healer fell back to the rules: %s", reason)
    return {"diagnosis": state["rules"], "fallback_reason": reason}


# -- edges -----------------------------------------------------------------------------------------


def after_context(state: HealState) -> Literal["ask", "fallback"]:
    return "fallback" if state.get("fallback_reason") else "ask"


def after_ask(state: HealState) -> Literal["check", "fallback"]:
    return "fallback" if state.get("fallback_reason") else "check"


def after_check(state: HealState) -> Literal["accept", "repair", "fallback"]:
    if not state.get("problem"):
        return "accept"
    return "repair" if state["attempts"] < MAX_ATTEMPTS else "fallback"


def build_graph() -> CompiledStateGraph[HealState, HealContext, HealState, HealState]:
    graph = StateGraph(HealState, context_schema=HealContext)
    graph.add_node("context", build_context)
    graph.add_node("ask", ask)
    graph.add_node("check", check)
    graph.add_node("repair", repair)
    graph.add_node("accept", accept)
    graph.add_node("fallback", fallback)
    graph.add_edge(START, "context")
    graph.add_conditional_edges("context", after_context)
    graph.add_conditional_edges("ask", after_ask)
    graph.add_conditional_edges("check", after_check)
    graph.add_edge("repair", "ask")
    graph.add_edge("accept", END)
    graph.add_edge("fallback", END)
    return graph.compile()


_GRAPH = build_graph()
