"""Execution accuracy: does the SQL of a translation return what the gold SQL returns?

A question set is JSON Lines of `GoldQuestion`s; an unanswerable question has no gold SQL and
must be refused. Both statements run on the same engine through the firewall, and the results
are compared as the NL-to-SQL literature does ("execution accuracy"), with two allowances:

- Columns are matched by content, not name or position, and the translation may show more
  columns than the gold (a key beside a name): every gold column must equal a distinct column
  of the translation's result.
- Rows compare as a multiset unless the question asks for an order (`ordered`); numbers
  compare with a relative tolerance, Decimal against float; a timestamp at midnight equals
  its date (toStartOfMonth and date_trunc print the same month differently).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from duet_agents.query import guarded
from duet_agents.query.engines.base import Engine, Result
from duet_agents.query.engines.errors import QueryError
from duet_agents.query.nl.engine import Translator
from duet_agents.query.nl.translation import Answered, Translation

REL_TOL = 1e-6
MAX_ROWS = 10_000


class GoldQuestion(BaseModel):
    """A question of a question set, over the database `db`."""

    model_config = ConfigDict(frozen=True)

    id: str
    db: str
    question: str
    # None: the question cannot be answered from the schema and must be refused.
    sql: str | None
    # Whether the question asks for an order (top N, "per month"), so rows compare in order.
    ordered: bool = False
    tags: list[str] = []


@dataclass(frozen=True)
class Outcome:
    question: GoldQuestion
    translation: Translation
    correct: bool
    # Why not, when not.
    detail: str = ""


@dataclass(frozen=True)
class Score:
    correct: int
    answerable: int
    refused: int
    unanswerable: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.answerable if self.answerable else 0.0


def evaluate(
    questions: Iterable[GoldQuestion], translator: Translator, engine: Engine, *, today: date
) -> list[Outcome]:
    """Each question translated, run and compared with its gold answer on `engine`."""
    outcomes: list[Outcome] = []
    for question in questions:
        translation = translator.answer(question.question, today=today)
        outcomes.append(_judge(question, translation, engine))
    return outcomes


def score(outcomes: Sequence[Outcome]) -> Score:
    answerable = [o for o in outcomes if o.question.sql is not None]
    unanswerable = [o for o in outcomes if o.question.sql is None]
    return Score(
        correct=sum(o.correct for o in answerable),
        answerable=len(answerable),
        refused=sum(o.correct for o in unanswerable),
        unanswerable=len(unanswerable),
    )


def _judge(question: GoldQuestion, translation: Translation, engine: Engine) -> Outcome:
    if question.sql is None:
        if isinstance(translation, Answered):
            return Outcome(question, translation, False, f"answered: {translation.sql}")
        return Outcome(question, translation, True)
    if not isinstance(translation, Answered):
        return Outcome(question, translation, False, f"refused: {translation.reason}")
    gold = guarded.run(engine, question.sql, max_rows=MAX_ROWS)
    try:
        predicted = guarded.run(engine, translation.sql, max_rows=MAX_ROWS)
    except QueryError as e:
        return Outcome(question, translation, False, f"failed: {e}")
    if same_result(gold, predicted, ordered=question.ordered):
        return Outcome(question, translation, True)
    return Outcome(
        question,
        translation,
        False,
        f"different result: gold {_preview(gold)}, got {_preview(predicted)}",
    )


def same_result(
    gold: Result, predicted: Result, *, ordered: bool, rel_tol: float = REL_TOL
) -> bool:
    """Whether `predicted` holds `gold`'s rows (see the module's allowances)."""
    if len(gold.rows) != len(predicted.rows):
        return False
    width = len(gold.columns)
    gold_rows = [tuple(_normal(v) for v in row) for row in gold.rows]
    predicted_rows = [tuple(_normal(v) for v in row) for row in predicted.rows]
    if not gold_rows:
        return width <= len(predicted.columns)
    # The columns of `predicted` whose values could be each gold column's.
    candidates = [
        [
            k
            for k in range(len(predicted.columns))
            if _same_column(
                [r[j] for r in gold_rows], [r[k] for r in predicted_rows], ordered, rel_tol
            )
        ]
        for j in range(width)
    ]
    for mapping in itertools.product(*candidates):
        if len(set(mapping)) != width:
            continue
        projected = [tuple(row[k] for k in mapping) for row in predicted_rows]
        if _same_rows(gold_rows, projected, ordered, rel_tol):
            return True
    return False


def _same_column(a: list[Any], b: list[Any], ordered: bool, rel_tol: float) -> bool:
    if not ordered:
        a, b = sorted(a, key=_key), sorted(b, key=_key)
    return all(_equal(x, y, rel_tol) for x, y in zip(a, b, strict=True))


def _same_rows(
    a: list[tuple[Any, ...]], b: list[tuple[Any, ...]], ordered: bool, rel_tol: float
) -> bool:
    if not ordered:
        a = sorted(a, key=lambda row: tuple(_key(v) for v in row))
        b = sorted(b, key=lambda row: tuple(_key(v) for v in row))
    return all(
        all(_equal(x, y, rel_tol) for x, y in zip(ra, rb, strict=True))
        for ra, rb in zip(a, b, strict=True)
    )


def _normal(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (Decimal, int)):
        return float(value)
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date()
        return value
    return value


def _key(value: Any) -> tuple[int, Any]:
    """A sort key across types, with floats rounded so that near-equal ones sort together."""
    if value is None:
        return (0, 0)
    if isinstance(value, float):
        return (1, float(f"{value:.9g}"))
    if isinstance(value, (date, datetime)):
        return (2, value.isoformat())
    return (3, str(value))


def _equal(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)
    return bool(a == b)


def _preview(result: Result, rows: int = 3) -> str:
    shown = ", ".join(str(row) for row in result.rows[:rows])
    more = f" ... ({len(result.rows)} rows)" if len(result.rows) > rows else ""
    return f"[{shown}{more}]"
