"""A question's reading, between the words and the SQL: what is measured over which table,
grouped, filtered, ordered and cut how. reading.py builds it, sqlgen.py prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from duet_agents.query.nl.dates import DateRange
from duet_agents.query.nl.schema import ColumnRef, TableRef
from duet_agents.query.nl.vocabulary import Agg, Grain


@dataclass(frozen=True)
class Measure:
    """An aggregate over the rows of `table`: of `column`, or of the rows themselves when
    `column` is None (a count)."""

    agg: Agg
    table: TableRef
    column: ColumnRef | None = None

    def describe(self) -> str:
        if self.column is None:
            return f"number of {self.table.table} rows"
        return f"{self.agg} of {self.column}"


@dataclass(frozen=True)
class ColumnGroup:
    column: ColumnRef

    def describe(self) -> str:
        return str(self.column)


@dataclass(frozen=True)
class EntityGroup:
    """One group per row of `table` (by its key), shown by its label column."""

    table: TableRef

    def describe(self) -> str:
        return f"each {self.table.table} row"


@dataclass(frozen=True)
class TimeGroup:
    column: ColumnRef
    grain: Grain

    def describe(self) -> str:
        return f"{self.grain} of {self.column}"


Group = ColumnGroup | EntityGroup | TimeGroup


@dataclass(frozen=True)
class ValueFilter:
    column: ColumnRef
    values: tuple[str, ...]
    negated: bool = False

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values)
        if len(self.values) == 1:
            return f"{self.column} {'<>' if self.negated else '='} {shown}"
        return f"{self.column} {'not in' if self.negated else 'in'} ({shown})"


@dataclass(frozen=True)
class CompareFilter:
    column: ColumnRef
    op: str
    number: float

    def describe(self) -> str:
        shown = int(self.number) if self.number.is_integer() else self.number
        return f"{self.column} {self.op} {shown}"


@dataclass(frozen=True)
class DateFilter:
    column: ColumnRef
    range: DateRange

    def describe(self) -> str:
        return f"{self.column} {self.range.describe()} ({self.range.text!r})"


@dataclass(frozen=True)
class MissingFilter:
    """`column` has no value ("customers without an email")."""

    column: ColumnRef

    def describe(self) -> str:
        return f"{self.column} is empty"


Filter = ValueFilter | CompareFilter | DateFilter | MissingFilter


@dataclass(frozen=True)
class Related:
    """Subject rows joined to some row of `table` that meets `filters` ("customers who placed
    orders"), or, negated, to none ("customers who never ordered")."""

    table: TableRef
    filters: tuple[Filter, ...] = ()
    negated: bool = False

    def describe(self) -> str:
        where = f" where {' and '.join(f.describe() for f in self.filters)}" if self.filters else ""
        return f"{'with no' if self.negated else 'with a'} matching {self.table.table} row{where}"


@dataclass(frozen=True)
class Order:
    """By the first measure (column None) or by a column."""

    desc: bool
    column: ColumnRef | None = None

    def describe(self) -> str:
        what = "the measure" if self.column is None else str(self.column)
        return f"{what} {'descending' if self.desc else 'ascending'}"


@dataclass(frozen=True)
class Plan:
    subject: TableRef
    # Empty: a listing of the subject's rows.
    measures: tuple[Measure, ...] = ()
    groups: tuple[Group, ...] = ()
    filters: tuple[Filter, ...] = ()
    related: tuple[Related, ...] = ()
    order: Order | None = None
    limit: int | None = None
    # Columns a listing shows besides the key and label.
    shown: tuple[ColumnRef, ...] = ()
    # How the words were read, for the explanation.
    notes: tuple[str, ...] = field(default=())
