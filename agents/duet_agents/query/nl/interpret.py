"""Interpretation: the scanned and linked pieces of a question, left to right, into a Plan.

The reading is a handful of patterns of analytic questions, not a grammar:
- an aggregate and what follows it: "average order value", "number of cancelled orders";
- a group word and what follows it: "by country", "per month", "by status and priority";
- a question word or "top N" and its noun (the target), which a superlative ranks: "which
  agent solved the most tickets", "top 5 customers by revenue", "the 3 most recent orders";
- a comparison and the number column beside it: "sessions longer than 600 seconds";
- a negation and what follows it: "customers who never ordered" (an anti-join), "orders not
  cancelled" (a value filter), "customers without an email" (an empty column);
- values found in the data are filters; dates filter the subject's time column.
The subject (whose rows are counted, added up or listed) is the table of the first measure,
else the target or the listed noun. Anything left over refuses the question.
"""

from __future__ import annotations

from duet_agents.query.nl import joins
from duet_agents.query.nl.lexicon import Element, ValueRef, table_of
from duet_agents.query.nl.negation import read_negation
from duet_agents.query.nl.plan import (
    ColumnGroup,
    CompareFilter,
    DateFilter,
    EntityGroup,
    Filter,
    Group,
    Measure,
    Order,
    Plan,
    Related,
    TimeGroup,
    ValueFilter,
)
from duet_agents.query.nl.refusal import CannotAnswerError
from duet_agents.query.nl.scanning import Item, Kind
from duet_agents.query.nl.schema import ColumnRef, SchemaView, TableRef, is_numeric, is_temporal
from duet_agents.query.nl.vocabulary import Agg, Grain
from duet_agents.query.nl.words import Token, singular

# Rows a ranking shows when it names no number and its noun is plural ("top customers").
DEFAULT_TOP = 10
# Superlatives of quantity: "the most orders" counts them; "the biggest orders" sizes them.
_COUNTING = frozenset({"most", "fewest", "least"})


def interpret(items: list[Item], tokens: list[Token], view: SchemaView) -> Plan:
    return _Interpreter(items, tokens, view).plan()


class _Interpreter:
    def __init__(self, items: list[Item], tokens: list[Token], view: SchemaView) -> None:
        self.view = view
        self.tokens = tokens
        negation = next((k for k, item in enumerate(items) if item.kind is Kind.NEG), None)
        self.main = items if negation is None else items[:negation]
        self.anti = [] if negation is None else items[negation + 1 :]
        self.negation = None if negation is None else items[negation]
        if self.negation is not None:
            self.negation.used = True
        self.top = next((item for item in self.main if item.kind is Kind.TOP), None)
        # A ranking orders groups by a measure: "top N", or a superlative.
        self.ranking = any(
            item.kind in (Kind.TOP, Kind.SUPER)
            or (item.kind is Kind.ORDERING and _before_agg(self.main, k))
            for k, item in enumerate(self.main)
        )
        self.target: Item | None = None
        self.measures: list[Measure] = []
        # What a ranking orders by, and which way.
        self.metric: Measure | None = None
        self.metric_desc = True
        self.groups: list[Group] = []
        self.grains: list[Grain] = []
        self.filters: list[Filter] = []
        self.dates: list[Item] = []
        self.comparisons: list[Item] = []
        # A listing's order: a column, or an adjective ("most recent") to find one for.
        self.order_column: ColumnRef | None = None
        self.order_adjective: Item | None = None
        self.order_desc = True
        self.listing_noun: Item | None = None
        self.notes: list[str] = []

    def plan(self) -> Plan:
        self._find_target()
        self._walk()
        subject = self._subject()
        related = self._related(subject)
        self._value_filters()
        self._place_comparisons(subject)
        self._place_dates(subject, related)
        groups = self._grouping(subject)
        if groups and not self.measures and self.metric is None:
            self._count_groups(subject)
        order, limit = self._order_and_limit(subject)
        shown = self._leftovers(subject)
        measures = [self.metric, *self.measures] if self.metric is not None else self.measures
        return Plan(
            subject=subject,
            measures=tuple(measures),
            groups=tuple(groups),
            filters=tuple(self.filters),
            related=tuple(related),
            order=order,
            limit=limit,
            shown=tuple(shown),
            notes=tuple(self.notes),
        )

    # -- the target: what "which", "list" or "top N" asks about ---------------------------------

    def _find_target(self) -> None:
        for k, item in enumerate(self.main):
            if item.kind not in (Kind.WHICH, Kind.TOP):
                continue
            item.used = True
            for following in self.main[k + 1 :]:
                if following.kind in (Kind.TOP, Kind.DISTINCT):
                    following.used = True
                    continue
                if following.kind is Kind.GRAIN or (
                    following.kind is Kind.LINK and self._can_be_target(following.element)
                ):
                    following.used = True
                    self.target = following
                break
            if self.target is not None:
                return

    def _target_element(self) -> Element | None:
        """The table or column the target links to; None without one, or for a period."""
        if self.target is None or self.target.kind is not Kind.LINK:
            return None
        return self.target.element

    def _can_be_target(self, element: Element) -> bool:
        """Tables and the columns one groups by; not values, and not measures ("what is the
        revenue" asks for a sum, not a list of revenues)."""
        if isinstance(element, TableRef):
            return True
        if isinstance(element, ColumnRef):
            return not (
                is_numeric(self.view.column(element).type) and not self.view.is_key(element)
            )
        return False

    # -- left to right ----------------------------------------------------------------------------

    def _walk(self) -> None:
        readers = {
            Kind.AGG: self._aggregate,
            Kind.SUPER: self._superlative,
            Kind.ORDERING: self._ordering,
            Kind.GROUP: self._group,
            Kind.GRAIN: self._periodic,
            Kind.CMP: self._comparison,
            Kind.DATE: self._date,
        }
        for k, item in enumerate(self.main):
            if item.used:
                continue
            if item.kind in readers:
                readers[item.kind](self.main, k)
            elif item.kind in (Kind.WHICH, Kind.DISTINCT):
                item.used = True
        # A group after the negation still groups the answer ("customers without orders, by
        # country"); everything else there belongs to the negation.
        for k, item in enumerate(self.anti):
            if item.kind in (Kind.GROUP, Kind.GRAIN) and not item.used:
                readers[item.kind](self.anti, k)

    def _periodic(self, items: list[Item], k: int) -> None:
        items[k].used = True
        self.grains.append(items[k].period)

    def _date(self, items: list[Item], k: int) -> None:
        self.dates.append(items[k])

    def _add_measure(self, measure: Measure, *, ranks: bool, desc: bool = True) -> None:
        if ranks and self.metric is None:
            self.metric = measure
            self.metric_desc = desc
        else:
            self.measures.append(measure)

    def _ranks(self, items: list[Item], k: int) -> tuple[bool, bool]:
        """Whether the measure read at k is what a ranking orders by ("the most", "top 5 ...
        by"), and in which direction."""
        previous = items[k - 1] if k > 0 else None
        # "the highest average", "the best average", "the longest average": what ranks.
        ranking_word = previous is not None and (
            previous.kind in (Kind.SUPER, Kind.ORDERING)
            or (previous.kind is Kind.TOP and previous.number is None)
        )
        if previous is not None and ranking_word:
            previous.used = True
            return True, previous.desc
        if previous is not None and previous.kind is Kind.GROUP and self.top is not None:
            return True, self.top.desc
        return False, True

    def _aggregate(self, items: list[Item], k: int) -> None:
        item = items[k]
        item.used = True
        agg = item.agg or Agg.COUNT
        ranks, desc = self._ranks(items, k)
        counting = agg in (Agg.COUNT, Agg.COUNT_DISTINCT)
        distinct = False
        values: list[Item] = []
        for following in items[k + 1 :]:
            if following.kind is Kind.DISTINCT:
                following.used = distinct = True
                continue
            if following.kind is Kind.AGG:
                raise CannotAnswerError(
                    f"{item.text!r} of {following.text!r}: an aggregate of an aggregate is "
                    "beyond the built-in engine"
                )
            if following.kind is not Kind.LINK:
                break
            element = following.element
            if isinstance(element, ValueRef):
                values.append(following)
                continue
            if counting:
                following.used = True
                self._add_measure(self._count(element, distinct), ranks=ranks, desc=desc)
                return
            if isinstance(element, TableRef):
                if agg is Agg.SUM and not self._column_follows(items, k):
                    # "total orders": how many.
                    following.used = True
                    self._add_measure(Measure(Agg.COUNT, element), ranks=ranks, desc=desc)
                    return
                continue
            assert isinstance(element, ColumnRef)
            following.used = True
            measure = self._column_measure(agg, element, item.text)
            self._add_measure(measure, ranks=ranks, desc=desc)
            return
        if counting and values:
            # "how many signups": rows of the value's table.
            table = table_of(values[0].element)
            self._add_measure(Measure(Agg.COUNT, table), ranks=ranks, desc=desc)
            return
        raise CannotAnswerError(f"could not tell what {item.text!r} applies to")

    def _column_follows(self, items: list[Item], k: int) -> bool:
        for following in items[k + 1 :]:
            if following.kind is not Kind.LINK:
                return False
            if isinstance(following.element, ColumnRef):
                return True
        return False

    def _count(self, element: Element, distinct: bool) -> Measure:
        if isinstance(element, TableRef):
            return Measure(Agg.COUNT_DISTINCT if distinct else Agg.COUNT, element)
        assert isinstance(element, ColumnRef)
        if is_temporal(self.view.column(element).type) or self.view.is_key(element):
            # "how many users signed up", "how many order numbers": rows.
            return Measure(Agg.COUNT, element.table_ref)
        # "how many countries": distinct values.
        return Measure(Agg.COUNT_DISTINCT, element.table_ref, element)

    def _column_measure(self, agg: Agg, column: ColumnRef, word: str) -> Measure:
        kind = self.view.column(column).type
        if agg in (Agg.SUM, Agg.AVG) and not is_numeric(kind):
            raise CannotAnswerError(f"{word!r} of {column}: it is not a number")
        if agg in (Agg.MIN, Agg.MAX) and not (is_numeric(kind) or is_temporal(kind)):
            raise CannotAnswerError(f"{word!r} of {column}: it is neither a number nor a date")
        return Measure(agg, column.table_ref, column)

    def _default_aggregate(self, column: ColumnRef, word: str) -> Measure:
        """A measure named without an aggregate ("revenue by country"): its sum when it adds
        up; otherwise the question has to say which aggregate."""
        if not is_numeric(self.view.column(column).type):
            raise CannotAnswerError(f"{word!r} ({column}) is not a number to rank by or add up")
        if self.view.is_additive(column):
            self.notes.append(f"{word!r} is added up: the sum of {column}")
            return Measure(Agg.SUM, column.table_ref, column)
        raise CannotAnswerError(
            f"{word!r} ({column}) does not add up: say which you mean, the average, total, "
            "minimum or maximum"
        )

    def _superlative(self, items: list[Item], k: int) -> None:
        item = items[k]
        item.used = True
        following = items[k + 1] if k + 1 < len(items) else None
        if following is not None and following.kind is Kind.ORDERING:
            # "most recent", "least expensive".
            self._ordering(items, k + 1, desc=following.desc == item.desc)
            return
        if following is not None and following.kind is Kind.AGG:
            # "the highest average order value": the aggregate says what ranks.
            return
        # "the most urgent tickets": values before the noun filter it.
        noun = next(
            (
                i
                for i in items[k + 1 :]
                if not (i.kind is Kind.LINK and isinstance(i.element, ValueRef))
            ),
            None,
        )
        if noun is None or noun.kind is not Kind.LINK:
            raise CannotAnswerError(f"could not tell what {item.text!r} applies to")
        element = noun.element
        noun.used = True
        if isinstance(element, TableRef):
            if item.text in _COUNTING:
                # "the most sessions": how many.
                self._add_measure(Measure(Agg.COUNT, element), ranks=True, desc=item.desc)
            else:
                # "the 5 biggest orders": the rows, by their size.
                self._order_rows_by_size(noun, desc=item.desc)
            return
        assert isinstance(element, ColumnRef)
        if self.target is not None or self.top is not None:
            self._rank_by_column(element, noun.text, desc=item.desc)
        else:
            agg = Agg.MAX if item.desc else Agg.MIN
            self.measures.append(self._column_measure(agg, element, item.text))

    def _order_rows_by_size(self, noun: Item, *, desc: bool) -> None:
        table = noun.table
        column = self.view.default_measure(table)
        if column is None:
            raise CannotAnswerError(
                f"could not tell which column of {table.table} {noun.text!r} ranks by"
            )
        self.listing_noun = noun
        self.order_column = column
        self.order_desc = desc
        self.notes.append(f"{table.table} ranked by {column}")

    def _rank_by_column(self, column: ColumnRef, word: str, *, desc: bool) -> None:
        target = self._target_element()
        if target == column.table_ref:
            # "top 5 products by price": the rows themselves, in order.
            self.order_column = column
            self.order_desc = desc
            return
        self.metric = self._default_aggregate(column, word)
        self.metric_desc = desc

    def _ordering(self, items: list[Item], k: int, *, desc: bool | None = None) -> None:
        item = items[k]
        if _before_agg(items, k):
            # "the longest average duration": the aggregate ranks (see _ranks).
            return
        item.used = True
        desc = item.desc if desc is None else desc
        self.order_desc = desc
        following = items[k + 1] if k + 1 < len(items) else None
        if following is not None and following.kind is Kind.LINK:
            element = following.element
            if isinstance(element, ColumnRef) and not self.view.is_key(element):
                # "the earliest signup date", "the longest duration": a minimum or maximum.
                following.used = True
                measure = self._column_measure(Agg.MAX if desc else Agg.MIN, element, item.text)
                self.measures.append(measure)
                return
            if isinstance(element, TableRef):
                following.used = True
                self.listing_noun = following
        self.order_adjective = item

    def _group(self, items: list[Item], k: int) -> None:
        item = items[k]
        item.used = True
        following = items[k + 1] if k + 1 < len(items) else None
        if following is None or following.used:
            return
        if following.kind is Kind.GRAIN:
            following.used = True
            self.grains.append(following.period)
            return
        if following.kind is not Kind.LINK or isinstance(following.element, ValueRef):
            # "by number of ..." (an aggregate follows), "handled by Anna" (a value), "sorted
            # by": a preposition, not a grouping.
            return
        element = following.element
        following.used = True
        if self.ranking and self.metric is None and self._is_measure(element):
            desc = self.top.desc if self.top is not None else True
            if isinstance(element, TableRef):
                self.metric = Measure(Agg.COUNT, element)
                self.metric_desc = desc
            else:
                assert isinstance(element, ColumnRef)
                self._rank_by_column(element, following.text, desc=desc)
            return
        self.groups.append(self._group_of(element))
        # "by status and priority": the links right after are groups too.
        for more in items[k + 2 :]:
            if more.kind is not Kind.LINK or more.used or isinstance(more.element, ValueRef):
                break
            more.used = True
            self.groups.append(self._group_of(more.element))

    def _group_of(self, element: Element) -> Group:
        if isinstance(element, TableRef):
            return EntityGroup(element)
        assert isinstance(element, ColumnRef)
        if is_temporal(self.view.column(element).type):
            return TimeGroup(element, Grain.DAY)
        return ColumnGroup(element)

    def _is_measure(self, element: Element) -> bool:
        """What "top 5 X by ..." ranks by: a number column, or another table (how many)."""
        if isinstance(element, TableRef):
            return self._target_element() != element
        if isinstance(element, ColumnRef):
            return is_numeric(self.view.column(element).type) and not self.view.is_key(element)
        return False

    def _comparison(self, items: list[Item], k: int) -> None:
        """A comparison takes the number column right before or after it ("a price below
        20", "lasted longer than 600 seconds"); others wait for the subject."""
        item = items[k]
        for neighbour in (
            items[k - 1] if k > 0 else None,
            items[k + 1] if k + 1 < len(items) else None,
        ):
            if neighbour is None or neighbour.used or neighbour.kind is not Kind.LINK:
                continue
            element = neighbour.element
            if isinstance(element, ColumnRef) and is_numeric(self.view.column(element).type):
                neighbour.used = item.used = True
                self.filters.append(_compare(element, item))
                return
        self.comparisons.append(item)

    # -- the subject: whose rows are counted, added up or listed ---------------------------------

    def _subject(self) -> TableRef:
        if self.metric is not None:
            return self.metric.table
        if self.measures:
            return self._distinct_subject(self.measures[0])
        if self.listing_noun is not None:
            return self.listing_noun.table
        target = self._target_element()
        if isinstance(target, TableRef):
            return target
        numbers = [
            item
            for item in self._unused(ColumnRef)
            if is_numeric(self.view.column(item.column).type) and not self.view.is_key(item.column)
        ]
        if numbers:
            # "revenue by country", "what is the revenue": a measure without an aggregate.
            numbers[0].used = True
            measure = self._default_aggregate(numbers[0].column, numbers[0].text)
            self._add_measure(measure, ranks=self.ranking)
            return measure.table
        grouped = bool(self.groups or self.grains or self.target is not None)
        tables = self._unused(TableRef)
        if tables:
            tables[0].used = True
            table = tables[0].table
            if grouped:
                # "sessions by device": how many.
                self._add_measure(Measure(Agg.COUNT, table), ranks=self.ranking)
            else:
                self.listing_noun = tables[0]
            return table
        values = [i for i in self.main if i.kind is Kind.LINK and isinstance(i.element, ValueRef)]
        if values:
            table = table_of(values[0].element)
            if grouped:
                self._add_measure(Measure(Agg.COUNT, table), ranks=self.ranking)
            return table
        raise CannotAnswerError("could not tell what to count, add up or list")

    def _distinct_subject(self, measure: Measure) -> TableRef:
        """ "how many distinct customers placed orders": the orders' distinct customer ids."""
        if measure.agg is not Agg.COUNT_DISTINCT or measure.column is not None:
            return measure.table
        for item in self._unused(TableRef):
            other = item.table
            steps = joins.path(self.view, other, measure.table)
            if steps is not None and len(steps) == 1 and steps[0].to_one:
                item.used = True
                column = ColumnRef(other.schema, other.table, steps[0].source_columns[0])
                self.measures[0] = Measure(Agg.COUNT_DISTINCT, other, column)
                self.notes.append(f"distinct {measure.table.table} as distinct {column}")
                return other
        return measure.table

    def _unused(self, kind: type) -> list[Item]:
        return [
            item
            for item in self.main
            if item.kind is Kind.LINK and not item.used and isinstance(item.element, kind)
        ]

    # -- tables related to the subject ------------------------------------------------------------

    def _related(self, subject: TableRef) -> list[Related]:
        related: list[Related] = []
        if self.negation is not None:
            negation = read_negation(self.view, subject, self.negation, self.anti)
            self.filters += negation.filters
            related += negation.related
        # "customers who placed orders": rows of a table that refer to the subject's rows.
        for item in self._unused(TableRef):
            steps = joins.path(self.view, subject, item.table)
            if steps is None:
                raise CannotAnswerError(f"no joins connect {subject.table} and {item.table.table}")
            item.used = True
            if steps and not all(step.to_one for step in steps):
                related.append(Related(item.table))
                self.notes.append(f"{subject.table} rows that have {item.table.table} rows")
        return related

    # -- filters ----------------------------------------------------------------------------------

    def _value_filters(self) -> None:
        by_column: dict[ColumnRef, list[str]] = {}
        for item in self.main:
            element = item.element if item.kind is Kind.LINK else None
            if isinstance(element, ValueRef) and not item.used:
                item.used = True
                values = by_column.setdefault(element.column, [])
                if element.value not in values:
                    values.append(element.value)
        for column, values in by_column.items():
            self.filters.append(ValueFilter(column, tuple(values)))
        # A column named beside its value ("the pro plan", "high priority") adds nothing.
        for item in self._unused(ColumnRef):
            if item.element in by_column:
                item.used = True

    def _place_comparisons(self, subject: TableRef) -> None:
        """A comparison no number column stands beside compares the measure of the table
        named before it ("customers with orders over 1000": the order total), else of the
        subject."""
        for cmp in self.comparisons:
            cmp.used = True
            before = [
                i
                for i in self.main[: self.main.index(cmp)]
                if i.kind is Kind.LINK and isinstance(i.element, TableRef)
            ]
            tables = [i.table for i in reversed(before)] + [subject]
            column = next(
                (c for t in tables if (c := self.view.compared_measure(t)) is not None), None
            )
            if column is None:
                raise CannotAnswerError(f"could not tell which column {cmp.text!r} compares")
            self.notes.append(f"{cmp.text!r} compares {column}")
            self.filters.append(_compare(column, cmp))

    def _place_dates(self, subject: TableRef, related: list[Related]) -> None:
        for item in self.dates:
            assert item.date is not None
            item.used = True
            self.filters.append(DateFilter(self._date_column(subject, item, related), item.date))

    def _date_column(self, subject: TableRef, item: Item, related: list[Related]) -> ColumnRef:
        """A date column the question names ("created", "signed up"); else that of a table
        whose rows the subject's are required to have ("customers who placed orders in
        March"); else the subject's own."""
        for link in self._unused(ColumnRef):
            column = link.column
            if is_temporal(self.view.column(column).type):
                link.used = True
                return column
        for rel in related:
            found = self.view.time_column(rel.table)
            if not rel.negated and found is not None:
                return found
        own = self.view.time_column(subject)
        if own is None:
            raise CannotAnswerError(f"{subject.table} has no date column for {item.text!r}")
        return own

    # -- the shape of the answer ------------------------------------------------------------------

    def _grouping(self, subject: TableRef) -> list[Group]:
        key = self.view.key(subject)
        # "average quantity per order line": one group per subject row is no grouping.
        groups = [
            g
            for g in self.groups
            if g != EntityGroup(subject) and not (isinstance(g, ColumnGroup) and g.column == key)
        ]
        for grain in self.grains:
            groups.append(TimeGroup(self._time_column(subject, grain), grain))
        measured = self.metric is not None or bool(self.measures)
        if measured and self.target is not None:
            group = self._target_group(subject)
            if group is not None:
                groups.insert(0, group)
        # "by email ... by email": once.
        return list(dict.fromkeys(groups))

    def _count_groups(self, subject: TableRef) -> None:
        """Rows listed by group ("customers per month") are counted per group; rows ordered
        one by one ("the 5 most recent orders per email") cannot be grouped as well."""
        if self.order_column is not None or self.order_adjective is not None:
            raise CannotAnswerError(
                f"could not tell how to order {subject.table} rows and group them as well"
            )
        self.measures.append(Measure(Agg.COUNT, subject))
        self.notes.append(f"{subject.table} rows counted per group")

    def _time_column(self, subject: TableRef, grain: Grain) -> ColumnRef:
        column = self.view.time_column(subject)
        if column is None:
            raise CannotAnswerError(f"{subject.table} has no date column to group by {grain}")
        return column

    def _target_group(self, subject: TableRef) -> Group | None:
        assert self.target is not None
        if self.target.kind is Kind.GRAIN:
            grain = self.target.period
            return TimeGroup(self._time_column(subject, grain), grain)
        element = self.target.element
        if element == subject:
            return None
        return self._group_of(element)

    def _order_and_limit(self, subject: TableRef) -> tuple[Order | None, int | None]:
        noun = self.listing_noun or self.target
        if self.metric is not None:
            return Order(desc=self.metric_desc), self._limit(noun)
        ordered_rows = self.order_column is not None or self.order_adjective is not None
        if ordered_rows and self.measures:
            # "revenue expensive": rows have an order, a sum does not.
            word = self.order_adjective.text if self.order_adjective else "the order"
            raise CannotAnswerError(
                f"could not tell how {word!r} applies to {self.measures[0].describe()}"
            )
        if self.order_column is not None:
            return Order(desc=self.order_desc, column=self.order_column), self._limit(noun)
        if self.order_adjective is not None:
            column = self.view.ordering_column(subject, self.order_adjective.ordering)
            if column is None:
                raise CannotAnswerError(
                    f"{subject.table} has no column that {self.order_adjective.text!r} orders by"
                )
            return Order(desc=self.order_desc, column=column), self._limit(noun)
        if self.top is not None:
            raise CannotAnswerError(f"{self.top.text!r}: could not tell what ranks the rows")
        return None, None

    def _limit(self, noun: Item | None) -> int:
        """The N of "top N"; else one row for a singular noun ("which agent"), DEFAULT_TOP
        for a plural one."""
        if self.top is not None and self.top.number is not None:
            return int(self.top.number)
        if noun is not None and not self._plural(noun):
            return 1
        return DEFAULT_TOP

    def _plural(self, item: Item) -> bool:
        word = self.tokens[item.end - 1].text
        return singular(word) != word

    def _leftovers(self, subject: TableRef) -> list[ColumnRef]:
        """Links nothing used: in a listing, columns to show; otherwise a refusal."""
        shown: list[ColumnRef] = []
        listing = not self.measures and self.metric is None
        for item in self.main:
            if item.used:
                continue
            if item.kind is not Kind.LINK:
                raise CannotAnswerError(f"could not read {item.text!r} here")
            element = item.element
            item.used = True
            if not isinstance(element, ColumnRef):
                continue
            if listing:
                shown.append(element)
            elif not (element.table_ref == subject and is_temporal(self.view.column(element).type)):
                # A date column of the subject unused is the verb of its event ("signed up").
                raise CannotAnswerError(f"could not tell what to do with {item.text!r} ({element})")
        return shown


def _before_agg(items: list[Item], k: int) -> bool:
    return k + 1 < len(items) and items[k + 1].kind is Kind.AGG


def _compare(column: ColumnRef, item: Item) -> CompareFilter:
    assert item.op is not None
    assert item.number is not None
    return CompareFilter(column, item.op, item.number)
