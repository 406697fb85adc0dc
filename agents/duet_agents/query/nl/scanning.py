"""The first pass over a question: numbers with comparisons ("over 500"), date expressions, and
the analytic keywords ("how many", "average", "by", "top 5", "never"), each an `Item`. The
words left free are for the linker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from duet_agents.query.nl.dates import DateRange, find_dates
from duet_agents.query.nl.lexicon import Candidate, Element
from duet_agents.query.nl.schema import ColumnRef, TableRef
from duet_agents.query.nl.vocabulary import (
    AGGREGATES,
    COMPARISONS,
    DISTINCT,
    GRAINS,
    GROUP_WORDS,
    NEGATIONS,
    ORDERING_ADJECTIVES,
    PERIODIC,
    SUPERLATIVES,
    UNITS,
    Agg,
    Grain,
)
from duet_agents.query.nl.words import Token, normalize, number, tokenize


class Kind(StrEnum):
    LINK = "link"
    AGG = "aggregate"
    DISTINCT = "distinct"
    SUPER = "superlative"
    ORDERING = "ordering adjective"
    GROUP = "group"
    GRAIN = "grain"
    NEG = "negation"
    WHICH = "which"
    TOP = "top"
    DATE = "date"
    CMP = "comparison"


@dataclass
class Item:
    """A piece of the question: tokens [start, end) and what they are."""

    kind: Kind
    start: int
    end: int
    text: str
    agg: Agg | None = None
    # Superlatives, TOP and orderings: highest first?
    desc: bool = True
    grain: Grain | None = None
    number: float | None = None
    op: str | None = None
    date: DateRange | None = None
    # ORDERING: the kind of column it orders by ("time", "price", "duration").
    ordering: str | None = None
    # LINK: the element chosen for it.
    link: Candidate | None = None
    used: bool = field(default=False)

    @property
    def element(self) -> Element:
        assert self.link is not None, self
        return self.link.element

    @property
    def table(self) -> TableRef:
        element = self.element
        assert isinstance(element, TableRef), self
        return element

    @property
    def column(self) -> ColumnRef:
        element = self.element
        assert isinstance(element, ColumnRef), self
        return element

    @property
    def period(self) -> Grain:
        assert self.grain is not None, self
        return self.grain

    def is_link(self, kind: type) -> bool:
        """A link to a table, column or value (`kind`)."""
        return self.kind is Kind.LINK and isinstance(self.element, kind)


_WHICH = frozenset({"which", "what", "who", "list", "show", "display", "name"})
_TOP = {"top": True, "best": True, "bottom": False, "worst": False}


@dataclass(frozen=True)
class _Keyword:
    kind: Kind
    agg: Agg | None = None
    desc: bool = True
    grain: Grain | None = None
    ordering: str | None = None


def _phrases() -> list[tuple[tuple[str, ...], _Keyword]]:
    table: list[tuple[tuple[str, ...], _Keyword]] = []
    table += [(tuple(p.split()), _Keyword(Kind.AGG, agg=a)) for p, a in AGGREGATES.items()]
    table += [((w,), _Keyword(Kind.DISTINCT)) for w in DISTINCT]
    table += [
        ((w,), _Keyword(Kind.SUPER, desc=d)) for w, d in SUPERLATIVES.items() if w not in _TOP
    ]
    table += [
        ((w,), _Keyword(Kind.ORDERING, ordering=column, desc=d))
        for w, (column, d) in ORDERING_ADJECTIVES.items()
    ]
    table += [(tuple(p.split()), _Keyword(Kind.GROUP)) for p in GROUP_WORDS]
    table += [((w,), _Keyword(Kind.GRAIN, grain=g)) for w, g in PERIODIC.items()]
    table += [((w,), _Keyword(Kind.NEG)) for w in NEGATIONS]
    table += [((w,), _Keyword(Kind.WHICH)) for w in _WHICH]
    table += [((w,), _Keyword(Kind.TOP, desc=d)) for w, d in _TOP.items()]
    # Longest first, so "total number of" wins over "total".
    return sorted(table, key=lambda entry: -len(entry[0]))


_PHRASES = _phrases()
_COMPARISONS = sorted(
    ((tuple(p.split()), op) for p, op in COMPARISONS.items()), key=lambda e: -len(e[0])
)


@dataclass
class Scan:
    tokens: list[Token]
    items: list[Item]
    # free[i]: token i is left for the linker.
    free: list[bool]


def scan(question: str, today: date) -> Scan:
    tokens = tokenize(question)
    free = [True] * len(tokens)
    items: list[Item] = []
    items += _comparisons(tokens, free)
    items += _dates(question, tokens, free, today)
    items += _keywords(tokens, free)
    return Scan(tokens, sorted(items, key=lambda item: item.start), free)


def _take(free: list[bool], start: int, end: int) -> None:
    for i in range(start, end):
        free[i] = False


def _words_at(tokens: list[Token], free: list[bool], i: int, words: tuple[str, ...]) -> bool:
    end = i + len(words)
    return (
        end <= len(tokens)
        and all(free[i:end])
        and all(tokens[i + k].text == w for k, w in enumerate(words))
    )


def _comparisons(tokens: list[Token], free: list[bool]) -> list[Item]:
    """ "over 500", "more than 600 seconds", "at least 3": an operator and a number."""
    items: list[Item] = []
    for i in range(len(tokens)):
        for words, op in _COMPARISONS:
            j = i + len(words)
            if not _words_at(tokens, free, i, words) or j >= len(tokens) or not free[j]:
                continue
            value = number(tokens[j].text)
            if value is None:
                continue
            end = j + 1
            if end < len(tokens) and tokens[end].text in UNITS:
                end += 1
            text = " ".join(t.text for t in tokens[i:end])
            items.append(Item(Kind.CMP, i, end, text, op=op, number=value))
            _take(free, i, end)
            break
    return items


def _dates(question: str, tokens: list[Token], free: list[bool], today: date) -> list[Item]:
    items: list[Item] = []
    for mention in find_dates(normalize(question), today):
        inside = [
            i for i, t in enumerate(tokens) if t.start >= mention.start and t.end <= mention.end
        ]
        if not inside or not all(free[i] for i in inside):
            continue
        start, end = inside[0], inside[-1] + 1
        items.append(Item(Kind.DATE, start, end, mention.range.text, date=mention.range))
        _take(free, start, end)
    return items


def _keywords(tokens: list[Token], free: list[bool]) -> list[Item]:
    items: list[Item] = []
    i = 0
    while i < len(tokens):
        if not free[i]:
            i += 1
            continue
        item = _keyword_at(tokens, free, i, items[-1] if items else None)
        if item is None:
            i += 1
            continue
        items.append(item)
        _take(free, item.start, item.end)
        i = item.end
    return items


def _keyword_at(
    tokens: list[Token], free: list[bool], i: int, previous: Item | None
) -> Item | None:
    token = tokens[i]
    adjacent = previous is not None and previous.end == i
    # "per month", "which year": a period after a group word or a question word.
    if adjacent and previous is not None and previous.kind in (Kind.GROUP, Kind.WHICH, Kind.TOP):
        grain = GRAINS.get(token.stem) or GRAINS.get(token.text)
        if grain is not None:
            return Item(Kind.GRAIN, i, i + 1, token.text, grain=grain)
    value = number(token.text)
    if value is not None and value.is_integer() and _is_count_of_rows(tokens, free, i, previous):
        return Item(Kind.TOP, i, i + 1, token.text, number=value)
    for words, keyword in _PHRASES:
        if not _words_at(tokens, free, i, words):
            continue
        end = i + len(words)
        text = " ".join(words)
        if keyword.kind is Kind.TOP:
            # "top 5": the number belongs to it.
            n = number(tokens[end].text) if end < len(tokens) and free[end] else None
            if n is not None and n.is_integer():
                label = f"{text} {tokens[end].text}"
                return Item(Kind.TOP, i, end + 1, label, number=n, desc=keyword.desc)
        return Item(
            keyword.kind,
            i,
            end,
            text,
            agg=keyword.agg,
            desc=keyword.desc,
            grain=keyword.grain,
            ordering=keyword.ordering,
        )
    return None


def _is_count_of_rows(tokens: list[Token], free: list[bool], i: int, previous: Item | None) -> bool:
    """A number that says how many rows to show: "which 5 urls", "the 3 most recent"."""
    if previous is not None and previous.end == i and previous.kind is Kind.WHICH:
        return True
    following = tokens[i + 1].text if i + 1 < len(tokens) and free[i + 1] else ""
    return following in SUPERLATIVES or following in ORDERING_ADJECTIVES
