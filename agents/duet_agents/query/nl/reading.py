"""Reading a question: its words in, a Plan out, or a CannotAnswerError that says why not.

    scan (scanning.py)        numbers, dates and keywords are taken out of the question
    link (linking.py)         the other words are linked to tables, columns and values
    embedding (embeddings.py) words still unlinked get a try by meaning, when a model is there
    resolve (resolve.py)      each link's element is chosen by the joins the choice needs
    interpret (interpret.py)  the pieces are read left to right into a Plan

A word that links nowhere refuses the question: the engine says what it could not read
rather than answer a question it did not understand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from duet_agents.query.nl.embeddings import EmbeddingIndex
from duet_agents.query.nl.interpret import interpret
from duet_agents.query.nl.lexicon import Lexicon, describe
from duet_agents.query.nl.linking import link, unlinked
from duet_agents.query.nl.plan import Plan
from duet_agents.query.nl.refusal import CannotAnswerError
from duet_agents.query.nl.resolve import resolve
from duet_agents.query.nl.scanning import Item, Kind, scan
from duet_agents.query.nl.schema import SchemaView


@dataclass(frozen=True)
class Reading:
    plan: Plan
    # "'revenue' -> column orders.total_amount (comment)", one per linked phrase.
    links: list[str]


def read(
    question: str,
    view: SchemaView,
    lexicon: Lexicon,
    *,
    today: date,
    embeddings: EmbeddingIndex | None = None,
) -> Reading:
    """The plan of `question`, or a CannotAnswerError."""
    scanned = scan(question, today)
    tokens = scanned.tokens
    links = link(tokens, scanned.free, lexicon)
    missing = unlinked(tokens, scanned.free, links)
    if missing and embeddings is not None:
        found = embeddings.links(tokens, missing)
        links = sorted(links + found, key=lambda lk: lk.start)
        missing = unlinked(tokens, scanned.free, links)
    if missing:
        words = [tokens[i].text for i in missing]
        raise CannotAnswerError(
            f"no table, column or value matches {', '.join(repr(w) for w in words)}",
            unlinked=words,
        )
    chosen = resolve(links, view)
    items = scanned.items + [
        Item(Kind.LINK, lk.start, lk.end, lk.text, link=c)
        for lk, c in zip(links, chosen, strict=True)
    ]
    items.sort(key=lambda item: item.start)
    plan = interpret(items, tokens, view)
    described = [
        f"{item.text!r} -> {describe(item.link.element)} ({item.link.via})"
        for item in items
        if item.kind is Kind.LINK and item.link is not None
    ]
    return Reading(plan, described)
