"""What each table, column and value of a catalog can be called in a question, with how sure
a match would be.

A table is called by its name (`order_items`: "order items"), less surely by the last word of
it ("items"); a column by its name without the words that only give its unit or storage
(`duration_seconds`: "duration"; `created_at`: "created"), by its table and name together
("session duration", "product price"), and by phrases and words of its comment (a comment
"Order value in EUR; the revenue of the order" makes "order value" and "revenue" name it). A
value of the value index is called by itself ("Germany", "cancelled"). The built-in synonym
table (vocabulary.SYNONYM_GROUPS) lets "clients" call `customers`, at a discount.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from duet_agents.query.catalog import Catalog
from duet_agents.query.nl.schema import ColumnRef, TableRef, is_temporal
from duet_agents.query.nl.values import ValueIndex
from duet_agents.query.nl.vocabulary import NOISE_NAME_WORDS, STOPWORDS, synonyms
from duet_agents.query.nl.words import (
    Token,
    phrase_stems,
    singular,
    stem,
    value_words,
)

# How sure each kind of match is; a synonym in place of a word costs SYNONYM_FACTOR.
NAME = 1.0
VALUE = 1.0
HEAD = 0.75
COMMENT_PHRASE = 0.8
COMMENT_WORD = 0.55
NAME_PART = 0.5
TABLE_COMMENT_PHRASE = 0.6
TABLE_COMMENT_WORD = 0.4
SYNONYM_FACTOR = 0.9
MAX_PHRASE = 4

_STOP_STEMS = frozenset(stem(w) for w in STOPWORDS)
_DATE_WORDS = frozenset(stem(w) for w in ("date", "time", "timestamp", "datetime", "day"))


@dataclass(frozen=True, order=True)
class ValueRef:
    column: ColumnRef
    value: str

    def __str__(self) -> str:
        return f"{self.column} = {self.value!r}"


Element = TableRef | ColumnRef | ValueRef


def table_of(element: Element) -> TableRef:
    if isinstance(element, TableRef):
        return element
    if isinstance(element, ColumnRef):
        return element.table_ref
    return element.column.table_ref


def describe(element: Element) -> str:
    if isinstance(element, TableRef):
        return f"table {element.table}"
    if isinstance(element, ColumnRef):
        return f"column {element}"
    return f"value {element.value!r} of {element.column}"


@dataclass(frozen=True)
class Pattern:
    words: tuple[str, ...]
    element: Element
    score: float
    # How the element is called this way, for the explanation: "name", "comment", "value"...
    via: str
    # Values match word for word; names may take synonyms.
    exact: bool = False


@dataclass(frozen=True)
class Candidate:
    element: Element
    score: float
    via: str


class Lexicon:
    """Patterns indexed by length and by every word that could stand first."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self._index: dict[tuple[int, str], list[Pattern]] = defaultdict(list)
        for p in patterns:
            firsts = {p.words[0]} if p.exact else synonyms(p.words[0])
            for first in firsts:
                self._index[len(p.words), first].append(p)

    def match(self, tokens: Sequence[Token]) -> list[Candidate]:
        """Every element the tokens call, best first, one score per element. Names compare
        by stem (and synonym), values by their singular words."""
        stems = tuple(t.stem for t in tokens)
        forms = tuple(singular(t.text) for t in tokens)
        best: dict[Element, Candidate] = {}
        found = [(p, stems) for p in self._index.get((len(stems), stems[0]), []) if not p.exact]
        found += [(p, forms) for p in self._index.get((len(forms), forms[0]), []) if p.exact]
        for p, words in found:
            score = _score(words, p)
            if score is None:
                continue
            current = best.get(p.element)
            if current is None or score > current.score:
                best[p.element] = Candidate(p.element, score, p.via)
        return sorted(best.values(), key=lambda c: (-c.score, str(c.element)))


def _score(words: tuple[str, ...], pattern: Pattern) -> float | None:
    score = pattern.score
    for word, wanted in zip(words, pattern.words, strict=True):
        if word == wanted:
            continue
        if pattern.exact or wanted not in synonyms(word):
            return None
        score *= SYNONYM_FACTOR
    return score


def build_lexicon(catalog: Catalog, values: ValueIndex | None = None) -> Lexicon:
    patterns: list[Pattern] = []
    table_names = {phrase_stems(t.name) for s in catalog.schemas for t in s.tables}
    table_names |= {words[-1:] for words in table_names}
    keys = _keys(catalog)
    for schema in catalog.schemas:
        for table in schema.tables:
            ref = TableRef(schema.name, table.name)
            table_words = phrase_stems(table.name)
            patterns.extend(_table_patterns(ref, table_words, table.comment))
            for column in table.columns:
                cref = ColumnRef(schema.name, table.name, column.name)
                patterns.extend(
                    # A table's name or its last word calls the table: "sessions" is not
                    # `session_id`, "page views" not `viewed_at`, "rated" not `rated_at`.
                    p
                    for p in _column_patterns(
                        cref,
                        table_words,
                        column.comment,
                        compound=not is_temporal(column.type),
                        key=cref in keys,
                    )
                    if p.words not in table_names
                )
    for column_values in (values or ValueIndex()).columns:
        cref = ColumnRef(column_values.schema_name, column_values.table, column_values.column)
        for value in column_values.values:
            words = value_words(value)
            if words and len(words) <= MAX_PHRASE + 1 and _meaningful(words):
                patterns.append(Pattern(words, ValueRef(cref, value), VALUE, "value", exact=True))
    return Lexicon(patterns)


def _keys(catalog: Catalog) -> set[ColumnRef]:
    """Join columns and columns named like identifiers."""
    keys = {
        ColumnRef(schema.name, table.name, c.name)
        for schema in catalog.schemas
        for table in schema.tables
        for c in table.columns
        if c.name.lower() == "id" or c.name.lower().endswith("_id")
    }
    for j in catalog.joins:
        keys |= {ColumnRef(j.from_schema, j.from_table, c) for c in j.from_columns}
        keys |= {ColumnRef(j.to_schema, j.to_table, c) for c in j.to_columns}
    return keys


def _meaningful(words: tuple[str, ...]) -> bool:
    """Not only stop words or numbers: a value "no" or "1" would link by accident."""
    return any(w not in STOPWORDS and not w.isdigit() and len(w) > 1 for w in words)


def _table_patterns(
    ref: TableRef, words: tuple[str, ...], comment: str | None
) -> Iterator[Pattern]:
    if not words:
        return
    yield Pattern(words, ref, NAME, "table name")
    if len(words) > 1:
        yield Pattern(words[-1:], ref, HEAD, "table name")
        for word in words[:-1]:
            if word not in _STOP_STEMS:
                yield Pattern((word,), ref, NAME_PART, "part of the table name")
    yield from _comment_patterns(ref, comment, TABLE_COMMENT_PHRASE, TABLE_COMMENT_WORD)


def _column_patterns(
    ref: ColumnRef,
    table_words: tuple[str, ...],
    comment: str | None,
    *,
    compound: bool,
    key: bool,
) -> Iterator[Pattern]:
    words = phrase_stems(ref.column)
    if not words:
        return
    # A date column is named for its event: `signup_date` is "signup", `created_at` "created".
    noise = NOISE_NAME_WORDS if compound else NOISE_NAME_WORDS | _DATE_WORDS
    content = tuple(w for w in words if w not in noise) or words
    yield Pattern(words, ref, NAME, "column name")
    if content != words:
        yield Pattern(content, ref, NAME, "column name")
    if len(content) > 1:
        yield Pattern(content[-1:], ref, HEAD, "column name")
    # "session duration", "product price": the table's words, then the column's. Not for a
    # date: "users signed up" is the users and their verb, not `signed_up_at`.
    prefixes = {table_words, *((w,) for w in table_words)} if compound else set()
    for prefix in prefixes:
        if prefix and content[: len(prefix)] != prefix and len(prefix) + len(content) <= MAX_PHRASE:
            yield Pattern(prefix + content, ref, NAME, "table and column name")
    # A key's comment words ("the assigned agent; NULL while unassigned") would make it a
    # dimension; its name and comment phrases still call it.
    yield from _comment_patterns(ref, comment, COMMENT_PHRASE, None if key else COMMENT_WORD)


def _comment_patterns(
    element: TableRef | ColumnRef, comment: str | None, phrase: float, word: float | None
) -> Iterator[Pattern]:
    """Contiguous phrases of a comment that start and end with a content word, and its
    content words alone."""
    if not comment:
        return
    stems = phrase_stems(comment)
    for i, first in enumerate(stems):
        if first in _STOP_STEMS or first.isdigit():
            continue
        if word is not None:
            yield Pattern((first,), element, word, "comment")
        for n in range(2, MAX_PHRASE + 1):
            words = stems[i : i + n]
            if len(words) == n and words[-1] not in _STOP_STEMS:
                yield Pattern(words, element, phrase, "comment")
