"""Choosing among the elements each linked phrase may call: the combination whose tables
need the fewest joins, weighed against how well each phrase matched.

"country" may be `customers.country` or `suppliers.country`; next to "revenue" (orders) the
one a join away from orders wins. When two combinations are equally good and differ, the
question is ambiguous and refused, naming what each phrase could be.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from duet_agents.query.nl import joins
from duet_agents.query.nl.lexicon import Candidate, describe, table_of
from duet_agents.query.nl.linking import Link
from duet_agents.query.nl.refusal import CannotAnswerError
from duet_agents.query.nl.schema import SchemaView, TableRef

# What one join costs against the score of a link.
JOIN_COST = 0.3
# Candidates kept per phrase, and combinations tried before settling for each phrase's best.
MAX_CANDIDATES = 4
MAX_COMBINATIONS = 4096


def resolve(links: list[Link], view: SchemaView) -> list[Candidate]:
    """One candidate per link: the combination with the highest total score less JOIN_COST
    per join needed to connect its tables. Ties between different elements refuse."""
    if not links:
        return []
    options = [lk.candidates[:MAX_CANDIDATES] for lk in links]
    combos: Sequence[tuple[Candidate, ...]]
    if _product_size(options) > MAX_COMBINATIONS:
        combos = [tuple(o[0] for o in options)]
    else:
        combos = list(itertools.product(*options))
    sizes: dict[frozenset[TableRef], int | None] = {}
    scored: list[tuple[float, tuple[Candidate, ...]]] = []
    for combo in combos:
        tables = frozenset(table_of(c.element) for c in combo)
        if tables not in sizes:
            sizes[tables] = joins.tree_size(view, set(tables))
        size = sizes[tables]
        if size is not None:
            scored.append((sum(c.score for c in combo) - JOIN_COST * size, combo))
    if not scored:
        names = sorted({table_of(o[0].element).table for o in options})
        raise CannotAnswerError(
            f"no joins connect the tables the question names: {', '.join(names)}"
        )
    best = max(value for value, _ in scored)
    winners = [combo for value, combo in scored if value >= best - 1e-9]
    ambiguous: list[tuple[str, list[str]]] = []
    for position, lk in enumerate(links):
        elements = sorted({describe(w[position].element) for w in winners})
        if len(elements) > 1:
            ambiguous.append((lk.text, elements))
    if ambiguous:
        detail = "; ".join(f"{words!r} could be {' or '.join(e)}" for words, e in ambiguous)
        raise CannotAnswerError(f"ambiguous: {detail}", ambiguous=ambiguous)
    return list(winners[0])


def _product_size(options: list[tuple[Candidate, ...]]) -> int:
    size = 1
    for option in options:
        size *= len(option)
    return size
