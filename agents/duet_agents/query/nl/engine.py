"""The built-in NL-to-SQL engine: a question and a catalog in, a Translation out, offline.

    translation = answer("Top 5 customers by revenue", catalog, values=values)
    if isinstance(translation, Answered):
        result = guarded.run(engine, translation.sql)

`Translator` keeps what is prepared from a catalog (the lexicon, the indexed schema, the
embedded descriptions) for many questions; `answer` prepares and answers once.
"""

from __future__ import annotations

from datetime import date

from duet_agents.query.catalog import Catalog
from duet_agents.query.firewall import Dialect, check
from duet_agents.query.nl.embeddings import Embedder, EmbeddingIndex
from duet_agents.query.nl.lexicon import Element, build_lexicon
from duet_agents.query.nl.plan import EntityGroup, Plan
from duet_agents.query.nl.reading import read
from duet_agents.query.nl.refusal import CannotAnswerError
from duet_agents.query.nl.schema import ColumnRef, SchemaView, TableRef
from duet_agents.query.nl.sqlgen import build_sql
from duet_agents.query.nl.translation import (
    Ambiguity,
    Answered,
    ReadingSummary,
    Refused,
    Translation,
)
from duet_agents.query.nl.values import ValueIndex
from duet_agents.query.nl.words import split_identifier


class Translator:
    """Answers questions over one catalog."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        values: ValueIndex | None = None,
        dialect: Dialect | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.catalog = catalog
        self.dialect = Dialect(dialect or catalog.dialect)
        self.view = SchemaView(catalog)
        self.lexicon = build_lexicon(catalog, values)
        self.embeddings = (
            EmbeddingIndex(embedder, _descriptions(self.view)) if embedder is not None else None
        )

    def answer(self, question: str, *, today: date | None = None) -> Translation:
        """SQL for `question`, or a refusal that says why; relative dates ("last 30 days")
        are read against `today` (default: the local date)."""
        try:
            reading = read(
                question,
                self.view,
                self.lexicon,
                today=today or date.today(),
                embeddings=self.embeddings,
            )
            built = build_sql(reading.plan, self.view, self.dialect)
        except CannotAnswerError as refusal:
            return Refused(
                question=question,
                reason=refusal.reason,
                unlinked=refusal.unlinked,
                ambiguous=[Ambiguity(words=w, candidates=c) for w, c in refusal.ambiguous],
            )
        verdict = check(built.sql, self.dialect)
        if not verdict.allowed:
            # Never expected: the engine writes plain SELECTs. Failing closed all the same.
            return Refused(
                question=question, reason=f"the firewall refused the SQL: {verdict.reason}"
            )
        summary = _summary(reading.plan, reading.links, built.joins)
        return Answered(
            question=question,
            dialect=self.dialect,
            sql=built.sql,
            explanation=_explain(reading.plan, summary),
            reading=summary,
        )


def answer(
    question: str,
    catalog: Catalog,
    *,
    values: ValueIndex | None = None,
    dialect: Dialect | None = None,
    today: date | None = None,
    embedder: Embedder | None = None,
) -> Translation:
    """The built-in engine's translation of `question` over `catalog`, for `dialect` (default:
    the catalog's). `values` lets it find values named in the question; `embedder` (see
    embeddings.load_embedder) links words it cannot link by spelling."""
    translator = Translator(catalog, values=values, dialect=dialect, embedder=embedder)
    return translator.answer(question, today=today)


def _summary(plan: Plan, links: list[str], join_notes: list[str]) -> ReadingSummary:
    joined = sorted(_tables(plan) - {plan.subject})
    related = [r.table for r in plan.related if r.table not in joined]
    tables = [plan.subject, *joined, *related]
    return ReadingSummary(
        links=links,
        tables=[t.table for t in tables],
        measures=[m.describe() for m in plan.measures],
        filters=[f.describe() for f in plan.filters] + [r.describe() for r in plan.related],
        group_by=[g.describe() for g in plan.groups],
        order_by=plan.order.describe() if plan.order is not None else None,
        limit=plan.limit,
        joins=list(dict.fromkeys(join_notes)),
        notes=list(plan.notes),
    )


def _tables(plan: Plan) -> set[TableRef]:
    """Every table the plan reads besides the related ones."""
    tables = {m.column.table_ref for m in plan.measures if m.column is not None}
    tables |= {f.column.table_ref for f in plan.filters}
    tables |= {c.table_ref for c in plan.shown}
    for group in plan.groups:
        tables.add(group.table if isinstance(group, EntityGroup) else group.column.table_ref)
    return tables


def _explain(plan: Plan, summary: ReadingSummary) -> str:
    what = " and ".join(summary.measures) if plan.measures else f"{plan.subject.table} rows"
    parts = [f"Reads {what}"]
    if len(summary.tables) > 1:
        parts.append(f"over {', '.join(summary.tables)}")
    if summary.filters:
        parts.append(f"where {' and '.join(summary.filters)}")
    if summary.group_by:
        parts.append(f"by {', '.join(summary.group_by)}")
    if summary.order_by:
        parts.append(f"ordered by {summary.order_by}")
    if summary.limit is not None:
        parts.append(f"first {summary.limit}")
    sentence = " ".join(parts) + "."
    if summary.links:
        sentence += " Words: " + "; ".join(summary.links) + "."
    if summary.joins:
        sentence += " Joins: " + "; ".join(summary.joins) + "."
    if summary.notes:
        sentence += " Notes: " + "; ".join(summary.notes) + "."
    return sentence


def _descriptions(view: SchemaView) -> dict[Element, str]:
    """What each table and column is, in words, for the embedding linker."""
    found: dict[Element, str] = {}
    for ref, table in view.tables.items():
        found[ref] = " ".join(split_identifier(ref.table)) + (
            f": {table.comment}" if table.comment else ""
        )
        for column in table.columns:
            cref = ColumnRef(ref.schema, ref.table, column.name)
            if view.is_key(cref):
                continue
            words = " ".join(split_identifier(column.name))
            found[cref] = words + (f": {column.comment}" if column.comment else "")
    return found
