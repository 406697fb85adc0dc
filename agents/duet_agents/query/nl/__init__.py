"""The built-in NL-to-SQL engine: plain-English analytic questions to SQL, offline, no model.

    from duet_agents.query.nl import Answered, answer, collect_values

    values = collect_values(engine, catalog)          # once per catalog
    translation = answer("Revenue by country in 2024", catalog, values=values)
    if isinstance(translation, Answered):
        print(translation.sql, translation.explanation)
    else:
        print("cannot answer:", translation.reason)

How it reads a question, what it supports and what it refuses: docs/nl-to-sql.md.
"""

from __future__ import annotations

from duet_agents.query.nl.embeddings import Embedder, load_embedder
from duet_agents.query.nl.engine import Translator, answer
from duet_agents.query.nl.translation import (
    Ambiguity,
    Answered,
    ReadingSummary,
    Refused,
    Translation,
)
from duet_agents.query.nl.values import ColumnValues, ValueIndex, collect_values

__all__ = [
    "Ambiguity",
    "Answered",
    "ColumnValues",
    "Embedder",
    "ReadingSummary",
    "Refused",
    "Translation",
    "Translator",
    "ValueIndex",
    "answer",
    "collect_values",
    "load_embedder",
]
