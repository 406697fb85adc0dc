"""The LLM NL-to-SQL engine: a chat model writes the SQL, Duet checks it, runs it, and feeds
every refusal or error back for a bounded number of repairs.

    from duet_agents.query.llm import AskPolicy, SchemaIndex, ask_with_model

    schema = SchemaIndex(catalog, values=values)          # once per catalog
    answer = await ask_with_model(
        "Revenue by country in 2024", model, schema=schema,
        execute=lambda sql: guarded.run(engine, sql),
    )
    if answer.answered:
        print(answer.sql, answer.explanation, answer.rows, answer.usage.cost_usd)
    else:
        print(answer.error_kind, answer.error)

This package imports LangGraph (slow to load); the model SDKs are the caller's
(duet_agents.llm.factory). How it works and how the query server uses it: docs/nl-to-sql.md.
"""

from __future__ import annotations

from duet_agents.query.llm.graph import Execute, ask_with_model
from duet_agents.query.llm.models import (
    AskPolicy,
    Attempt,
    ErrorKind,
    LLMAnswer,
    ModelUsage,
    Outcome,
    SqlProposal,
)
from duet_agents.query.llm.retrieval import SchemaContext, SchemaIndex

__all__ = [
    "AskPolicy",
    "Attempt",
    "ErrorKind",
    "Execute",
    "LLMAnswer",
    "ModelUsage",
    "Outcome",
    "SchemaContext",
    "SchemaIndex",
    "SqlProposal",
    "ask_with_model",
]
