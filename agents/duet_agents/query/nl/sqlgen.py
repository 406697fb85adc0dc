"""A Plan as SQL for one dialect, built as sqlglot expressions.

Joins follow the catalog's joins from the subject table. A join towards the table a key
references (orders -> customers) keeps one row per subject row and is written as a JOIN; a
join towards rows that reference the subject (orders -> order_items) would repeat subject rows,
so a table reached that way only filters, through `key IN (SELECT ...)`, and a negated
relation is `key NOT IN (SELECT ...)` with NULLs left out of the subquery (where NOT IN would
otherwise match nothing). Grouping or measuring across such a join is refused, except for a
count, which becomes a count of distinct subject keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect as SqlglotDialect

from duet_agents.query.firewall import Dialect
from duet_agents.query.nl import joins
from duet_agents.query.nl.joins import Step
from duet_agents.query.nl.plan import (
    ColumnGroup,
    CompareFilter,
    DateFilter,
    EntityGroup,
    Filter,
    Group,
    Measure,
    Plan,
    Related,
    TimeGroup,
    ValueFilter,
)
from duet_agents.query.nl.refusal import CannotAnswerError
from duet_agents.query.nl.schema import ColumnRef, SchemaView, TableRef, is_text
from duet_agents.query.nl.vocabulary import Agg, Grain

_SIMPLE = re.compile(r"^[a-z_][a-z0-9_]*$")
_RESERVED_WORDS = """
    USER CURRENT_USER SESSION_USER CURRENT_ROLE AUTHORIZATION ANALYSE ANALYZE BOTH LEADING
    TRAILING PLACING ONLY SYMMETRIC VARIADIC VERBOSE INITIALLY COLUMN CONSTRAINT DEFAULT
    PRIMARY FOREIGN REFERENCES CHECK UNIQUE GRANT WINDOW
"""
_RESERVED = frozenset(_RESERVED_WORDS.split())
_CLICKHOUSE_BUCKETS = {
    Grain.HOUR: "toStartOfHour",
    Grain.DAY: "toDate",
    Grain.WEEK: "toMonday",
    Grain.MONTH: "toStartOfMonth",
    Grain.QUARTER: "toStartOfQuarter",
    Grain.YEAR: "toYear",
}


@dataclass(frozen=True)
class _Layout:
    # Each table reached from the subject, with the step that enters it.
    entering: dict[TableRef, Step]
    joined: set[TableRef]
    # Per one-to-many step, the tables beyond it that only filter.
    semi: dict[Step, set[TableRef]]
    filtering: set[TableRef]
    distinct_count: bool


@dataclass(frozen=True)
class Built:
    sql: str
    # "orders.customer_id = customers.id (inferred: ...)", for the explanation.
    joins: list[str]


def build_sql(plan: Plan, view: SchemaView, dialect: Dialect) -> Built:
    builder = _Builder(plan, view, dialect)
    query = builder.query()
    return Built(query.sql(dialect=str(dialect)), builder.join_notes)


class _Builder:
    def __init__(self, plan: Plan, view: SchemaView, dialect: Dialect) -> None:
        self.plan = plan
        self.view = view
        self.dialect = dialect
        tokenizer = SqlglotDialect.get_or_raise(str(dialect)).tokenizer_class
        # Every word sqlglot reads as a keyword ("GROUP" of "GROUP BY"), and the reserved words
        # it reads as names: quoting one needlessly costs nothing, missing one breaks the SQL.
        self.keywords = {w for k in tokenizer.KEYWORDS for w in k.upper().split()} | _RESERVED
        if dialect is Dialect.CLICKHOUSE:
            self.default_schema = view.catalog.database
        else:
            self.default_schema = "public"
        self.join_notes: list[str] = []
        self.qualify = False

    # -- the query -------------------------------------------------------------------------------

    def query(self) -> exp.Select:
        plan = self.plan
        layout = self._layout()
        self.qualify = bool(layout.joined) or bool(layout.semi) or bool(plan.related)
        select = exp.select(*self._select_list(layout.distinct_count)).from_(
            self._table(plan.subject)
        )
        for table in self._join_order(layout.entering, layout.joined, plan.subject):
            step = layout.entering[table]
            select = select.join(self._table(table), on=self._on(step), join_type="inner")
            self._note_join(step)
        conditions = self._where(layout)
        if conditions:
            select = select.where(exp.and_(*conditions))
        group_by = self._group_by()
        if group_by:
            select = select.group_by(*group_by)
        order = self._order_by()
        if order:
            select = select.order_by(*order)
        if plan.limit is not None:
            select = select.limit(plan.limit)
        return select

    def _layout(self) -> _Layout:
        """How each table the plan names is reached from the subject: joined, or filtering
        through a semi-join beyond a one-to-many join."""
        plan = self.plan
        subject = plan.subject
        shown = {t for g in plan.groups for t in _group_tables(g)}
        shown |= {m.column.table_ref for m in plan.measures if m.column is not None}
        shown |= {c.table_ref for c in plan.shown}
        if plan.order is not None and plan.order.column is not None:
            shown.add(plan.order.column.table_ref)
        filtering = {f.column.table_ref for f in plan.filters}
        entering = joins.tree(self.view, subject, shown | filtering | {subject})
        if entering is None:
            raise CannotAnswerError("no joins connect the tables the question names")
        fan_out = {t for t in entering if not self._to_one(entering, subject, t)}
        distinct_count = False
        if fan_out & shown:
            counts_rows = all(
                m.agg is Agg.COUNT and m.column is None and m.table == subject
                for m in plan.measures
            )
            if not (plan.measures and counts_rows):
                names = ", ".join(sorted(t.table for t in fan_out & shown))
                raise CannotAnswerError(
                    f"grouping or measuring {subject.table} by {names} would repeat each "
                    f"{subject.table} row once per matching {names} row"
                )
            # Counting subject rows across it: each counted once.
            distinct_count = True
        joined = {t for t in entering if t not in fan_out or distinct_count}
        semi: dict[Step, set[TableRef]] = {}
        for table in entering:
            if table not in joined:
                first = self._first_to_many(entering, subject, table)
                semi.setdefault(first, set()).add(table)
        return _Layout(entering, joined, semi, filtering, distinct_count)

    def _where(self, layout: _Layout) -> list[exp.Expr]:
        plan = self.plan
        conditions = [
            c
            for f in plan.filters
            if f.column.table_ref in layout.joined | {plan.subject}
            for c in self._conditions(f)
        ]
        for step, tables in layout.semi.items():
            conditions.append(self._semi_join(step, layout.entering, tables))
        for related in plan.related:
            if not related.negated and related.table in layout.filtering:
                # Its filters already require a matching row (a semi-join above).
                continue
            conditions.append(self._related(related))
        return conditions

    def _to_one(self, entering: dict[TableRef, Step], root: TableRef, table: TableRef) -> bool:
        return all(step.to_one for step in _path_to(entering, root, table))

    def _first_to_many(
        self, entering: dict[TableRef, Step], root: TableRef, table: TableRef
    ) -> Step:
        return next(step for step in _path_to(entering, root, table) if not step.to_one)

    def _join_order(
        self, entering: dict[TableRef, Step], joined: set[TableRef], root: TableRef
    ) -> list[TableRef]:
        """Joined tables, each after the table it is joined from."""
        order: list[TableRef] = []
        placed = {root}
        pending = sorted(joined)
        while pending:
            ready = [t for t in pending if entering[t].source in placed]
            for table in ready:
                order.append(table)
                placed.add(table)
                pending.remove(table)
        return order

    # -- select, group, order ---------------------------------------------------------------------

    def _select_list(self, distinct_count: bool) -> list[exp.Expr]:
        plan = self.plan
        items: list[exp.Expr] = []
        for group in plan.groups:
            items.append(self._group_select(group))
        if not plan.measures:
            items.extend(self.column(c) for c in self._listing_columns())
        for measure in plan.measures:
            items.append(exp.alias_(self._measure(measure, distinct_count), self._alias(measure)))
        return items

    def _listing_columns(self) -> list[ColumnRef]:
        plan = self.plan
        columns: list[ColumnRef] = []
        for candidate in (self.view.key(plan.subject), self.view.label(plan.subject)):
            if candidate is not None:
                columns.append(candidate)
        extra = list(plan.shown)
        if plan.order is not None and plan.order.column is not None:
            extra.append(plan.order.column)
        extra += [f.column for f in plan.filters if isinstance(f, (CompareFilter, DateFilter))]
        for column in extra:
            if column not in columns and column.table_ref == plan.subject:
                columns.append(column)
        if not columns:
            columns = [
                ColumnRef(plan.subject.schema, plan.subject.table, c.name)
                for c in self.view.table(plan.subject).columns
            ]
        return columns

    def _group_select(self, group: Group) -> exp.Expr:
        if isinstance(group, ColumnGroup):
            return self.column(group.column)
        if isinstance(group, TimeGroup):
            return exp.alias_(self._bucket(group), self._time_alias(group))
        shown = self.view.label(group.table) or self.view.key(group.table)
        if shown is None:
            raise CannotAnswerError(f"{group.table.table} has no key or name column to group by")
        return self.column(shown)

    def _group_by(self) -> list[exp.Expr]:
        expressions: list[exp.Expr] = []
        for group in self.plan.groups:
            if isinstance(group, ColumnGroup):
                expressions.append(self.column(group.column))
            elif isinstance(group, TimeGroup):
                expressions.append(
                    exp.column(self._time_alias(group))
                    if self.dialect is Dialect.CLICKHOUSE
                    else self._bucket(group)
                )
            else:
                for column in (self.view.key(group.table), self.view.label(group.table)):
                    if column is not None:
                        expressions.append(self.column(column))
        return expressions

    def _order_by(self) -> list[exp.Expr]:
        plan = self.plan
        order: list[exp.Expr] = []
        if plan.order is not None:
            if plan.order.column is None and plan.measures:
                by: exp.Expr = exp.column(self._alias(plan.measures[0]))
            elif plan.order.column is not None:
                by = self.column(plan.order.column)
            else:
                return []
            order.append(exp.Ordered(this=by, desc=plan.order.desc))
            # Ties broken the same way every time.
            order.extend(exp.Ordered(this=e) for e in self._tie_breakers())
            return order
        time_groups = [g for g in plan.groups if isinstance(g, TimeGroup)]
        if time_groups:
            return [exp.Ordered(this=exp.column(self._time_alias(g))) for g in time_groups]
        if plan.groups and plan.measures:
            return [exp.Ordered(this=exp.column(self._alias(plan.measures[0])), desc=True)]
        return []

    def _tie_breakers(self) -> list[exp.Expr]:
        plan = self.plan
        if plan.groups:
            return [self._group_select(g).unalias() for g in plan.groups]
        key = self.view.key(plan.subject)
        return [self.column(key)] if key is not None and not plan.measures else []

    # -- expressions -----------------------------------------------------------------------------

    def column(self, ref: ColumnRef, *, qualify: bool | None = None) -> exp.Column:
        qualified = self.qualify if qualify is None else qualify
        return exp.column(
            self._identifier(ref.column),
            table=self._identifier(ref.table) if qualified else None,
        )

    def _identifier(self, name: str) -> exp.Identifier:
        simple = _SIMPLE.match(name) or (
            self.dialect is Dialect.CLICKHOUSE and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name)
        )
        return exp.to_identifier(name, quoted=not simple or name.upper() in self.keywords)

    def _table(self, ref: TableRef) -> exp.Table:
        if ref.schema == self.default_schema:
            return exp.Table(this=self._identifier(ref.table))
        return exp.Table(
            this=self._identifier(ref.table),
            db=self._identifier(ref.schema),
            alias=exp.TableAlias(this=self._identifier(ref.table)),
        )

    def _on(self, step: Step) -> exp.Expr:
        return exp.and_(*(self.column(a).eq(self.column(b)) for a, b in step.on()))

    def _note_join(self, step: Step) -> None:
        pairs = " and ".join(f"{a} = {b}" for a, b in step.on())
        kind = f"inferred: {step.join.reason}" if step.join.inferred else step.join.reason
        self.join_notes.append(f"{pairs} ({kind})")

    def _measure(self, measure: Measure, distinct_count: bool) -> exp.Expr:
        if measure.column is None:
            key = self.view.key(measure.table)
            if (distinct_count or measure.agg is Agg.COUNT_DISTINCT) and key is not None:
                return exp.Count(this=exp.Distinct(expressions=[self.column(key)]))
            return exp.Count(this=exp.Star())
        column = self.column(measure.column)
        if measure.agg in (Agg.COUNT, Agg.COUNT_DISTINCT):
            return exp.Count(this=exp.Distinct(expressions=[column]))
        functions: dict[Agg, type[exp.AggFunc]] = {
            Agg.SUM: exp.Sum,
            Agg.AVG: exp.Avg,
            Agg.MIN: exp.Min,
            Agg.MAX: exp.Max,
        }
        return functions[measure.agg](this=column)

    def _alias(self, measure: Measure) -> str:
        if measure.column is None:
            base = f"{measure.table.table}_count"
        else:
            name = measure.column.column
            base = {
                Agg.COUNT: f"distinct_{name}",
                Agg.COUNT_DISTINCT: f"distinct_{name}",
                Agg.SUM: f"sum_{name}" if name.startswith("total") else f"total_{name}",
                Agg.AVG: f"avg_{name}",
                Agg.MIN: f"min_{name}",
                Agg.MAX: f"max_{name}",
            }[measure.agg]
        return self._free_name(base.lower())

    def _time_alias(self, group: TimeGroup) -> str:
        """`month` for the first month group; `signup_date_month` for another."""
        same = [g for g in self.plan.groups if isinstance(g, TimeGroup) and g.grain is group.grain]
        if same and same[0] == group:
            return self._free_name(str(group.grain))
        return self._free_name(f"{group.column.column}_{group.grain}".lower())

    def _free_name(self, base: str) -> str:
        """`base`, or `base_value` when a column or table of the query has that name
        (ClickHouse resolves an alias before a column of the same name, anywhere)."""
        taken = {t.table.lower() for t in self.view.tables}
        for table in self.view.tables.values():
            taken |= {c.name.lower() for c in table.columns}
        return base if base not in taken else f"{base}_value"

    def _bucket(self, group: TimeGroup) -> exp.Expr:
        column = self.column(group.column)
        if self.dialect is Dialect.CLICKHOUSE:
            return exp.Anonymous(this=_CLICKHOUSE_BUCKETS[group.grain], expressions=[column])
        if group.grain is Grain.YEAR:
            return exp.Cast(
                this=exp.Extract(this=exp.var("YEAR"), expression=column),
                to=exp.DataType.build("INT"),
            )
        if group.grain is Grain.DAY:
            return exp.Cast(this=column, to=exp.DataType.build("DATE"))
        truncated = exp.Anonymous(
            this="date_trunc", expressions=[exp.Literal.string(str(group.grain)), column]
        )
        if group.grain is Grain.HOUR:
            return truncated
        return exp.Cast(this=truncated, to=exp.DataType.build("DATE"))

    def _conditions(self, f: Filter) -> list[exp.Expr]:
        """The conditions of a filter, to be joined with AND."""
        column = self.column(f.column)
        if isinstance(f, ValueFilter):
            literals = [exp.Literal.string(v) for v in f.values]
            if len(literals) == 1:
                return [column.neq(literals[0]) if f.negated else column.eq(literals[0])]
            found = column.isin(*literals)
            return [exp.Not(this=found) if f.negated else found]
        if isinstance(f, CompareFilter):
            number = exp.Literal.number(int(f.number) if f.number.is_integer() else f.number)
            operators: dict[str, type[exp.Binary]] = {
                ">": exp.GT,
                ">=": exp.GTE,
                "<": exp.LT,
                "<=": exp.LTE,
                "=": exp.EQ,
            }
            return [operators[f.op](this=column, expression=number)]
        if isinstance(f, DateFilter):
            parts: list[exp.Expr] = []
            if f.range.start is not None:
                parts.append(exp.GTE(this=column, expression=_date(f.range.start)))
            if f.range.end is not None:
                parts.append(exp.LT(this=column.copy(), expression=_date(f.range.end)))
            return parts
        missing: exp.Expr = exp.Is(this=column, expression=exp.Null())
        if is_text(self.view.column(f.column).type):
            missing = exp.paren(exp.or_(missing, column.copy().eq(exp.Literal.string(""))))
        return [missing]

    # -- subqueries ------------------------------------------------------------------------------

    def _semi_join(
        self, step: Step, entering: dict[TableRef, Step], tables: set[TableRef]
    ) -> exp.Expr:
        """`source.key IN (SELECT target.ref FROM target JOIN ... WHERE filters)` for the
        filters on `tables`, all reached from the subject through `step`."""
        filters = [f for f in self.plan.filters if f.column.table_ref in tables]
        inner = {t for t in tables}
        for table in tables:
            for s in _path_to(entering, step.target, table):
                inner.add(s.target)
        return self._membership(step, inner, filters, negated=False)

    def _related(self, related: Related) -> exp.Expr:
        steps = joins.path(self.view, self.plan.subject, related.table)
        if not steps:
            raise CannotAnswerError(
                f"no joins connect {self.plan.subject.table} and {related.table.table}"
            )
        tables = {s.target for s in steps} | {f.column.table_ref for f in related.filters}
        return self._membership(steps[0], tables, list(related.filters), negated=related.negated)

    def _membership(
        self, step: Step, tables: set[TableRef], filters: list[Filter], *, negated: bool
    ) -> exp.Expr:
        if len(step.source_columns) != 1:
            raise CannotAnswerError(
                f"the join {step.join.reason} has several columns; the built-in engine "
                "relates tables by one"
            )
        root = step.target
        entering = joins.tree(self.view, root, tables | {root})
        if entering is None:
            raise CannotAnswerError(
                f"no joins connect {root.table} and the tables it is filtered by"
            )
        self._note_join(step)
        ((outer, inner_key),) = step.on()
        subquery = exp.select(self.column(inner_key, qualify=True)).from_(self._table(root))
        for table in self._join_order(entering, set(entering), root):
            s = entering[table]
            subquery = subquery.join(
                self._table(table),
                on=exp.and_(
                    *(
                        self.column(a, qualify=True).eq(self.column(b, qualify=True))
                        for a, b in s.on()
                    )
                ),
                join_type="inner",
            )
            self._note_join(s)
        saved, self.qualify = self.qualify, True
        conditions = [c for f in filters for c in self._conditions(f)]
        self.qualify = saved
        if negated and self.view.column(inner_key).nullable:
            # NOT IN meets a NULL in the subquery as "unknown": no row would qualify.
            conditions.append(
                exp.Not(
                    this=exp.Is(this=self.column(inner_key, qualify=True), expression=exp.Null())
                )
            )
        if conditions:
            subquery = subquery.where(exp.and_(*conditions))
        found = self.column(outer).isin(query=subquery)
        if not negated:
            return found
        if step.to_one and self.view.column(outer).nullable:
            # "tickets with no agent": no reference at all, or one to a row that is not there.
            return exp.paren(
                exp.or_(exp.Is(this=self.column(outer), expression=exp.Null()), exp.Not(this=found))
            )
        return exp.Not(this=found)


def _path_to(entering: dict[TableRef, Step], root: TableRef, table: TableRef) -> list[Step]:
    steps: list[Step] = []
    node = table
    while node != root:
        step = entering[node]
        steps.append(step)
        node = step.source
    return steps[::-1]


def _group_tables(group: Group) -> Iterable[TableRef]:
    if isinstance(group, EntityGroup):
        return [group.table]
    return [group.column.table_ref]


def _date(day: date) -> exp.Expr:
    return exp.Literal.string(day.isoformat())
