"""Paths between tables along the catalog's joins (declared and inferred), and which way each
step goes: to the table a key references (many-to-one, a join that keeps the row count) or
to the rows that reference a key (one-to-many, a join that multiplies rows).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from duet_agents.query.catalog import Join
from duet_agents.query.nl.schema import ColumnRef, SchemaView, TableRef


@dataclass(frozen=True)
class Step:
    """One join walked from `source` to `target`: source.source_columns = target.target_columns."""

    source: TableRef
    target: TableRef
    source_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    # True when `target` is the table the key references: each source row meets one target row.
    to_one: bool
    # Left out of equality: a Join holds lists, and the columns above already say which join.
    join: Join = field(compare=False)

    def on(self) -> list[tuple[ColumnRef, ColumnRef]]:
        return [
            (
                ColumnRef(self.source.schema, self.source.table, s),
                ColumnRef(self.target.schema, self.target.table, t),
            )
            for s, t in zip(self.source_columns, self.target_columns, strict=True)
        ]


def steps_from(view: SchemaView, table: TableRef) -> list[Step]:
    """Every join that touches `table`, walked away from it; references (to-one) first."""
    steps: list[Step] = []
    for join in view.joins:
        source = TableRef(join.from_schema, join.from_table)
        target = TableRef(join.to_schema, join.to_table)
        if source == target:
            continue
        if source == table:
            steps.append(
                Step(source, target, tuple(join.from_columns), tuple(join.to_columns), True, join)
            )
        elif target == table:
            steps.append(
                Step(target, source, tuple(join.to_columns), tuple(join.from_columns), False, join)
            )
    # Declared joins before inferred ones, to-one before to-many: the tie-breaks of a search.
    return sorted(steps, key=lambda s: (s.join.inferred, not s.to_one, s.target))


def path(view: SchemaView, start: TableRef, goal: TableRef) -> list[Step] | None:
    """A shortest path of joins from `start` to `goal`; [] when they are one table, None when
    no joins connect them."""
    if start == goal:
        return []
    previous: dict[TableRef, Step] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        current = queue.popleft()
        for step in steps_from(view, current):
            if step.target in seen:
                continue
            seen.add(step.target)
            previous[step.target] = step
            if step.target == goal:
                return _unwind(previous, start, goal)
            queue.append(step.target)
    return None


def _unwind(previous: dict[TableRef, Step], start: TableRef, goal: TableRef) -> list[Step]:
    steps: list[Step] = []
    node = goal
    while node != start:
        step = previous[node]
        steps.append(step)
        node = step.source
    return steps[::-1]


def distance(view: SchemaView, a: TableRef, b: TableRef) -> int | None:
    found = path(view, a, b)
    return None if found is None else len(found)


def tree_size(view: SchemaView, tables: set[TableRef]) -> int | None:
    """How many joins connect `tables` (a spanning tree over shortest-path distances: exact
    for the few tables a question names, an upper bound otherwise); None when some table
    cannot be reached."""
    nodes = sorted(tables)
    if len(nodes) <= 1:
        return 0
    distances: dict[tuple[TableRef, TableRef], int] = {}
    for a, b in itertools.combinations(nodes, 2):
        d = distance(view, a, b)
        if d is None:
            return None
        distances[a, b] = distances[b, a] = d
    # Prim's algorithm over the metric closure.
    inside = {nodes[0]}
    total = 0
    while len(inside) < len(nodes):
        d, node = min((distances[a, b], b) for a in inside for b in nodes if b not in inside)
        inside.add(node)
        total += d
    return total


def tree(view: SchemaView, root: TableRef, tables: set[TableRef]) -> dict[TableRef, Step] | None:
    """The steps that reach every table of `tables` from `root`: each reached table mapped to
    the step that enters it (a tree rooted at `root`). None when one cannot be reached."""
    entering: dict[TableRef, Step] = {}
    for table in sorted(tables):
        steps = path(view, root, table)
        if steps is None:
            return None
        for step in steps:
            if step.target != root and step.target not in entering:
                entering[step.target] = step
    return entering
