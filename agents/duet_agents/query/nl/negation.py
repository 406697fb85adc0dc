"""Reading what follows a negation: "customers who never ordered" (an anti-join), "orders not
cancelled" (a value filter), "customers without an email" (an empty column), "agents who
never had an urgent ticket in 2025" (an anti-join with filters of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from duet_agents.query.nl import joins
from duet_agents.query.nl.lexicon import ValueRef, table_of
from duet_agents.query.nl.plan import (
    CompareFilter,
    DateFilter,
    Filter,
    MissingFilter,
    Related,
    ValueFilter,
)
from duet_agents.query.nl.refusal import CannotAnswerError
from duet_agents.query.nl.scanning import Item, Kind
from duet_agents.query.nl.schema import ColumnRef, SchemaView, TableRef


@dataclass(frozen=True)
class Negation:
    # Filters of the subject's own rows ("not cancelled", "without an email").
    filters: list[Filter]
    # Or the related rows there must be none of.
    related: list[Related]


def read_negation(view: SchemaView, subject: TableRef, word: Item, items: list[Item]) -> Negation:
    """What the negation `word` says about `subject`, from the items after it (marked used)."""
    links = [item for item in items if item.kind is Kind.LINK and not item.used]
    if not links:
        raise CannotAnswerError(f"could not tell what {word.text!r} applies to")
    first = links[0]
    first.used = True
    element = first.element
    rest = [item for item in items if not item.used]
    if isinstance(element, ColumnRef) and element.table_ref == subject:
        return _done(word, rest, Negation([MissingFilter(element)], []))
    if isinstance(element, ValueRef) and _to_one(view, subject, table_of(element)):
        negated = ValueFilter(element.column, (element.value,), negated=True)
        return _done(word, rest, Negation([negated], []))
    table = table_of(element)
    if table == subject:
        raise CannotAnswerError(f"could not read {first.text!r} after {word.text!r}")
    filters: list[Filter] = []
    if isinstance(element, ValueRef):
        filters.append(ValueFilter(element.column, (element.value,)))
    for item in rest:
        found = _filter(view, table, item)
        if found is not None:
            item.used = True
            filters.append(found)
        elif item.kind is Kind.LINK and table_of(item.element) == table:
            # "never been rated", "never placed an order": words of the related table.
            item.used = True
    return _done(word, rest, Negation([], [Related(table, tuple(filters), negated=True)]))


def _filter(view: SchemaView, table: TableRef, item: Item) -> Filter | None:
    """A filter of the related rows: a value, a date, a comparison."""
    if item.is_link(ValueRef):
        value = item.element
        assert isinstance(value, ValueRef)
        return ValueFilter(value.column, (value.value,))
    if item.kind is Kind.DATE and item.date is not None:
        column = view.time_column(table)
        if column is None:
            raise CannotAnswerError(f"{table.table} has no date column for {item.text!r}")
        return DateFilter(column, item.date)
    if item.kind is Kind.CMP and item.op is not None and item.number is not None:
        measure = view.compared_measure(table)
        if measure is None:
            raise CannotAnswerError(
                f"could not tell which column of {table.table} {item.text!r} compares"
            )
        return CompareFilter(measure, item.op, item.number)
    return None


def _done(word: Item, rest: list[Item], negation: Negation) -> Negation:
    # Groups after the negation group the whole answer; anything else unread refuses.
    left = [i for i in rest if not i.used and i.kind not in (Kind.GROUP, Kind.GRAIN)]
    if left:
        words = ", ".join(repr(i.text) for i in left)
        raise CannotAnswerError(f"could not read {words} after {word.text!r}")
    return negation


def _to_one(view: SchemaView, subject: TableRef, table: TableRef) -> bool:
    steps = joins.path(view, subject, table)
    return steps is not None and all(step.to_one for step in steps)
