"""Execution accuracy of the built-in NL-to-SQL engine on the sample schemas (tests/data/nl).

Every schema is loaded into one chDB directory by an admin connection; then, per schema,
through the read-only engine: introspection, value collection, every question answered, and
the answer's SQL and the gold SQL both run through the firewall and compared (accuracy.py).
The same figure is printed by `python bench/nl_accuracy.py`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from duet_agents.query import guarded
from duet_agents.query.engines import Engine, Limits, connect
from duet_agents.query.nl import Answered, Refused, Translator
from duet_agents.query.nl.accuracy import Outcome, evaluate, score
from tests.data.nl.samples import (
    HOLDOUT,
    QUESTIONS,
    SCHEMAS,
    TODAY,
    catalog_snapshot,
    chdb_samples,
    introspect,
    questions,
    values_snapshot,
)

LIMITS = Limits(max_rows=10_000, timeout_seconds=30)
MIN_ACCURACY = 0.8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with chdb_samples(tmp_path_factory.mktemp("nl") / "chdb") as path:
        yield path


@pytest.fixture(scope="module")
def engines(data_dir: Path) -> Iterator[dict[str, Engine]]:
    opened = {s: connect(f"chdb://{data_dir}?database={s}", limits=LIMITS) for s in SCHEMAS}
    try:
        yield opened
    finally:
        for engine in opened.values():
            engine.close()


def _outcomes(engines: dict[str, Engine], path: Path) -> list[Outcome]:
    found: list[Outcome] = []
    for schema, engine in engines.items():
        catalog, values = introspect(engine, schema)
        translator = Translator(catalog, values=values)
        asked = [q for q in questions(path) if q.db == schema]
        found += evaluate(asked, translator, engine, today=TODAY)
    return found


@pytest.fixture(scope="module")
def outcomes(engines: dict[str, Engine]) -> list[Outcome]:
    return _outcomes(engines, QUESTIONS)


@pytest.fixture(scope="module")
def held_out(engines: dict[str, Engine]) -> list[Outcome]:
    return _outcomes(engines, HOLDOUT)


def _failures(outcomes: list[Outcome]) -> str:
    return "\n".join(
        f"{o.question.id} {o.question.question!r}: {o.detail}" for o in outcomes if not o.correct
    )


def test_execution_accuracy_is_at_least_80_percent(outcomes: list[Outcome]) -> None:
    result = score(outcomes)
    assert result.answerable >= 36
    assert result.accuracy >= MIN_ACCURACY, _failures(outcomes)


def test_held_out_accuracy_is_at_least_80_percent(held_out: list[Outcome]) -> None:
    result = score(held_out)
    assert result.answerable >= 20
    assert result.accuracy >= MIN_ACCURACY, _failures(held_out)


def test_every_unanswerable_question_is_refused(
    outcomes: list[Outcome], held_out: list[Outcome]
) -> None:
    unanswerable = [o for o in outcomes + held_out if o.question.sql is None]
    assert unanswerable
    for outcome in unanswerable:
        assert isinstance(outcome.translation, Refused), outcome.detail
        assert outcome.translation.reason


def test_every_answer_explains_its_reading(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if isinstance(outcome.translation, Answered):
            reading = outcome.translation.reading
            assert reading.tables, outcome.question.id
            assert outcome.translation.explanation.startswith("Reads ")


def test_joins_are_explained_with_their_origin(outcomes: list[Outcome]) -> None:
    answer = next(o.translation for o in outcomes if o.question.id == "shop-04")
    assert isinstance(answer, Answered)
    assert answer.reading.joins == [
        "orders.customer_id = customers.id (inferred: orders.customer_id names table customers "
        "and matches its primary key id (integer))"
    ]


def test_question_set_covers_what_the_issue_asks() -> None:
    asked = questions()
    tags = Counter(tag for q in asked for tag in q.tags)
    assert len(asked) >= 36
    assert {q.db for q in asked} == set(SCHEMAS)
    for wanted in ("join", "anti-join", "date range", "top-n", "value filter", "unanswerable"):
        assert tags[wanted] >= 3, wanted
    assert len({q.id for q in asked}) == len(asked)


# Pieces of questions, put together at random: most combinations make no sense and are
# refused; every one answered must run.
HEADS = ["how many", "number of", "total", "average", "max", "which", "top 3", "the most", "list"]
HEADS += ["the 5 most recent", "count of distinct", "what is the highest", "the cheapest", ""]
TAILS = ["by", "per", "for each", "in 2024", "in the last 30 days", "never", "without", "not"]
TAILS += ["over 100", "under 20", "per month", "by day", "from", "and", ""]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_answer_to_generated_questions_runs(engines: dict[str, Engine], schema: str) -> None:
    catalog, values = introspect(engines[schema], schema)
    nouns = [t.name.replace("_", " ") for s in catalog.schemas for t in s.tables]
    nouns += [
        c.name.replace("_", " ")
        for s in catalog.schemas
        for t in s.tables
        for c in t.columns
        if not c.name.endswith("id")
    ]
    nouns += [v for column in values.columns for v in column.values[:3]]
    translator = Translator(catalog, values=values)
    rng = random.Random(f"nl:{schema}")
    answered = 0
    for _ in range(400):
        parts = [rng.choice(HEADS), rng.choice(nouns)]
        for _ in range(rng.randint(0, 3)):
            parts += [rng.choice(TAILS), rng.choice(nouns)]
        question = " ".join(p for p in parts if p)
        answer = translator.answer(question, today=TODAY)
        if isinstance(answer, Answered):
            answered += 1
            guarded.run(engines[schema], answer.sql, max_rows=10)  # raises if it does not run
    assert answered >= 40


@pytest.mark.parametrize("schema", SCHEMAS)
def test_snapshots_match_introspection(engines: dict[str, Engine], schema: str) -> None:
    """The unit tests read these snapshots; regenerate with `python -m tests.data.nl.samples`."""
    catalog, values = introspect(engines[schema], schema)
    assert catalog == catalog_snapshot(schema)
    assert values == values_snapshot(schema)


def test_values_are_collected_from_low_cardinality_text_columns(engines: dict[str, Engine]) -> None:
    _, values = introspect(engines["support"], "support")
    indexed = {(c.table, c.column) for c in values.columns}
    assert values.of("support", "tickets", "priority") == ["high", "low", "medium", "urgent"]
    # A few dozen agents are names to look for; thousands of subjects are not.
    assert ("agents", "name") in indexed
    assert ("tickets", "subject") not in indexed
    # Contact details are never indexed.
    assert ("tickets", "customer_email") not in indexed
