"""The LLM engine: a LangGraph that asks a chat model for SQL and trusts none of it.

    retrieve -> generate -> check -> execute -> END
                   ^          |         |
                   +- repair -+---------+   (at most policy.max_retries rounds)
                   |          +---------+-> give_up
                   +-> fail (the model gave no usable answer)

`retrieve` ranks the agent's schema for the question (retrieval.py); `generate` asks the model
for `{sql, explanation}` through a forced tool call; `check` puts the statement through the
table filter and the SQL firewall; `execute` runs it through the caller's guarded execution
(firewall again, row cap, read-only session, timeout). A refusal, a database error or an
answer that does not fit the tool's schema goes back to the model with the reason, like any
error. A model failure (unavailable, timeout, rate limit, not configured) ends the graph at
once with `ErrorKind.MODEL`, never an exception; so does an unexpected error of its client.
A lost database connection is not the model's to fix: it propagates as the engine's
ConnectionFailedError. Every call's tokens are counted, failed ones too.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from duet_agents.llm.base import ChatModel, LLMBadOutput, LLMError, Message, Usage
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, Ledger, LLMPrices
from duet_agents.query import guarded
from duet_agents.query.engines.base import Result
from duet_agents.query.engines.errors import (
    QueryDeniedError,
    QueryFailedError,
    QueryTimeoutError,
)
from duet_agents.query.firewall import check as firewall_check
from duet_agents.query.llm import prompts
from duet_agents.query.llm.models import (
    AskPolicy,
    Attempt,
    ErrorKind,
    LLMAnswer,
    ModelUsage,
    Outcome,
    SqlProposal,
)
from duet_agents.query.llm.retrieval import SchemaIndex
from duet_agents.query.tables import TableFilter

log = logging.getLogger(__name__)

# Runs one statement read-only with the caller's limits (guarded.run on an engine); raises
# a QueryError. Blocking: the graph calls it in a worker thread.
Execute = Callable[[str], Result]

# The errors a different statement may avoid; anything else (a lost connection) is not the
# model's to fix.
_STATEMENT_ERRORS = (
    guarded.QueryRefusedError,
    QueryFailedError,
    QueryTimeoutError,
    QueryDeniedError,
)


async def ask_with_model(
    question: str,
    model: ChatModel,
    *,
    schema: SchemaIndex,
    execute: Execute,
    tables: TableFilter | None = None,
    policy: AskPolicy | None = None,
    prices: LLMPrices | None = None,
) -> LLMAnswer:
    """`question` answered by a statement `model` writes and Duet checks and runs, or an
    error saying why none ran (`error_kind` MODEL when the model itself failed).

    `schema` is the catalog the agent may show; `tables` the filter every statement must
    pass too (default: every table). Raises only the engine's non-statement errors (a lost
    connection). The caller owns `model` (and closes it).
    """
    context = AskContext(
        question=question,
        model=model,
        schema=schema,
        execute=execute,
        tables=tables or TableFilter(),
        policy=policy or AskPolicy(),
    )
    state = await _GRAPH.ainvoke({"attempts": [], "usages": []}, context=context)
    ledger = Ledger(prices=prices or DEFAULT_LLM_PRICES)
    for usage in state["usages"]:
        ledger.add(model.provider, model.model, usage)
    spent = ledger.usage
    usage = ModelUsage(
        provider=model.provider,
        model=model.model,
        calls=ledger.calls,
        input_tokens=spent.input_tokens,
        output_tokens=spent.output_tokens,
        cost_usd=ledger.cost_usd,
        price_known=ledger.price_known,
    )
    result: Result | None = state.get("result")
    proposal: SqlProposal | None = state.get("proposal")
    explanation = proposal.explanation if proposal is not None else ""
    if result is None:
        return LLMAnswer(
            question=question,
            explanation=explanation,
            attempts=state["attempts"],
            usage=usage,
            error=state.get("error") or "no statement ran",
            error_kind=state.get("error_kind") or ErrorKind.MODEL,
        )
    return LLMAnswer(
        question=question,
        sql=result.sql,
        explanation=explanation,
        columns=[{"name": c.name, "type": c.type} for c in result.columns],
        rows=[list(row) for row in result.rows],
        truncated=result.truncated,
        elapsed_ms=result.elapsed_ms,
        attempts=state["attempts"],
        usage=usage,
    )


@dataclass(frozen=True)
class AskContext:
    """What every node reads and none changes (LangGraph's run context)."""

    question: str
    model: ChatModel
    schema: SchemaIndex
    execute: Execute
    tables: TableFilter
    policy: AskPolicy


class AskState(TypedDict, total=False):
    messages: list[Message]
    proposal: SqlProposal | None
    raw: str
    # Why the last statement (or answer) cannot be used: fed back in the next round.
    problem: str | None
    attempts: Annotated[list[Attempt], operator.add]  # one per round
    usages: Annotated[list[Usage], operator.add]  # one per model call, failed ones too
    result: Result
    error: str
    error_kind: ErrorKind


# -- nodes -----------------------------------------------------------------------------------------


def retrieve(state: AskState, runtime: Runtime[AskContext]) -> AskState:
    ctx = runtime.context
    found = ctx.schema.context(ctx.question, ctx.policy)
    first = prompts.question_data(ctx.question, found.document)
    return {"messages": [Message(role="user", content=first)]}


async def generate(state: AskState, runtime: Runtime[AskContext]) -> AskState:
    ctx = runtime.context
    try:
        answer = await ctx.model.structured(
            system=prompts.system_prompt(ctx.schema.dialect, ctx.policy),
            messages=state["messages"],
            schema=SqlProposal,
            tool_name=prompts.TOOL_NAME,
        )
    except LLMBadOutput as e:
        problem = "the answer does not fit the tool: " + "; ".join(e.problems)
        return {
            "usages": [e.usage],
            "attempts": [Attempt(sql=None, outcome=Outcome.BAD_OUTPUT, problem=problem)],
            "proposal": None,
            "raw": e.raw,
            "problem": problem,
        }
    except LLMError as e:
        return _model_failed(f"{e.kind}: {e}", e.usage)
    except Exception as e:  # a provider's bug must not cost the question its answer
        # Its type only: the message of an exception nobody shaped may carry a key.
        log.warning("chat model %r failed unexpectedly: %s", ctx.model, type(e).__name__)
        reason = f"unexpected error from the {ctx.model.provider} client: {type(e).__name__}"
        return _model_failed(reason, Usage())
    proposal = answer.value
    if not proposal.sql.strip():
        return {
            "usages": [answer.usage],
            "attempts": [Attempt(sql=None, outcome=Outcome.DECLINED, problem=None)],
            "proposal": proposal,
            "error": f"the model found no query for it: {proposal.explanation}",
            "error_kind": ErrorKind.DECLINED,
        }
    return {"usages": [answer.usage], "proposal": proposal, "raw": answer.raw, "problem": None}


def check(state: AskState, runtime: Runtime[AskContext]) -> AskState:
    ctx = runtime.context
    proposal = state["proposal"]
    assert proposal is not None  # generate routes here only with one
    sql = proposal.sql
    dialect = ctx.schema.dialect
    hidden = ctx.tables.refused_tables(sql, dialect, ctx.schema.default_schema)
    if hidden:
        problem = f"tables not readable by this agent: {', '.join(hidden)}"
        return _round_failed(sql, Outcome.NOT_ALLOWED, problem, ctx.policy)
    verdict = firewall_check(sql, dialect)
    if not verdict.allowed:
        problem = f"the SQL firewall refused it: {verdict.reason or 'refused'}"
        category = str(verdict.category) if verdict.category is not None else None
        return _round_failed(sql, Outcome.REFUSED, problem, ctx.policy, category)
    return {"problem": None}


async def execute(state: AskState, runtime: Runtime[AskContext]) -> AskState:
    ctx = runtime.context
    proposal = state["proposal"]
    assert proposal is not None
    try:
        result = await asyncio.to_thread(ctx.execute, proposal.sql)
    except guarded.QueryRefusedError as e:
        # Never expected after `check`, which asks the same firewall; failing closed.
        category = str(e.category) if e.category is not None else None
        problem = f"the SQL firewall refused it: {e.reason}"
        return _round_failed(proposal.sql, Outcome.REFUSED, problem, ctx.policy, category)
    except _STATEMENT_ERRORS as e:
        problem = f"the database could not run it: {e}"
        return _round_failed(proposal.sql, Outcome.FAILED, problem, ctx.policy)
    return {
        "result": result,
        "problem": None,
        "attempts": [Attempt(sql=result.sql, outcome=Outcome.OK)],
    }


def repair(state: AskState) -> AskState:
    problem = state.get("problem") or "the answer could not be used"
    return {
        "messages": [
            *state["messages"],
            Message(role="assistant", content=prompts.echoed_answer(state.get("raw", ""))),
            Message(role="user", content=prompts.repair_request(problem)),
        ]
    }


def give_up(state: AskState) -> AskState:
    attempts = state["attempts"]
    last = attempts[-1]
    kind = {
        Outcome.BAD_OUTPUT: ErrorKind.MODEL,
        Outcome.REFUSED: ErrorKind.REFUSED,
        Outcome.NOT_ALLOWED: ErrorKind.REFUSED,
    }.get(last.outcome, ErrorKind.FAILED)
    error = f"no statement could be run after {len(attempts)} attempt(s); the last: {last.problem}"
    return {"error": error, "error_kind": kind}


# -- edges -----------------------------------------------------------------------------------------


def after_generate(
    state: AskState, runtime: Runtime[AskContext]
) -> Literal["check", "repair", "give_up", "__end__"]:
    if state.get("error"):
        return "__end__"
    if state.get("problem"):
        return _retry_or_give_up(state, runtime)
    return "check"


def after_check(
    state: AskState, runtime: Runtime[AskContext]
) -> Literal["execute", "repair", "give_up"]:
    return _retry_or_give_up(state, runtime) if state.get("problem") else "execute"


def after_execute(
    state: AskState, runtime: Runtime[AskContext]
) -> Literal["repair", "give_up", "__end__"]:
    return _retry_or_give_up(state, runtime) if state.get("problem") else "__end__"


def _retry_or_give_up(
    state: AskState, runtime: Runtime[AskContext]
) -> Literal["repair", "give_up"]:
    return "repair" if len(state["attempts"]) <= runtime.context.policy.max_retries else "give_up"


def build_graph() -> CompiledStateGraph[AskState, AskContext, AskState, AskState]:
    graph = StateGraph(AskState, context_schema=AskContext)
    graph.add_node("retrieve", retrieve)
    graph.add_node("generate", generate)
    graph.add_node("check", check)
    graph.add_node("execute", execute)
    graph.add_node("repair", repair)
    graph.add_node("give_up", give_up)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "generate")
    graph.add_conditional_edges("generate", after_generate)
    graph.add_conditional_edges("check", after_check)
    graph.add_conditional_edges("execute", after_execute)
    graph.add_edge("repair", "generate")
    graph.add_edge("give_up", END)
    return graph.compile()


# -- helpers ---------------------------------------------------------------------------------------


def _model_failed(reason: str, usage: Usage) -> AskState:
    return {
        "usages": [usage],
        "error": f"the model gave no usable answer: {reason}",
        "error_kind": ErrorKind.MODEL,
    }


def _round_failed(
    sql: str, outcome: Outcome, problem: str, policy: AskPolicy, category: str | None = None
) -> AskState:
    if len(problem) > policy.max_problem_chars:
        problem = problem[: policy.max_problem_chars - 3] + "..."
    return {
        "problem": problem,
        "attempts": [Attempt(sql=sql, outcome=outcome, problem=problem, category=category)],
    }


_GRAPH = build_graph()
