"""Schema linking: which words of a question call which tables, columns and values.

The question's free words (those the parser has not taken as keywords, dates, numbers) are cut
into phrases so that the phrases' matches are as strong as possible in total, a phrase's
strength being its best match's score times its length: "order value" as one phrase naming
`orders.total_amount` by its comment beats "order" alone, while "solved tickets" stays two
phrases (the value 'solved' and the table `tickets`) rather than one weak match of a comment.
A phrase keeps every element it calls about as well as its best, and the parser picks among
them by the joins they need (reading.resolve).

Words no phrase links are reported unless they are stop words or fillers; an optional
embedding model gets a last try at them (embeddings.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from duet_agents.query.nl.lexicon import MAX_PHRASE, Candidate, Lexicon
from duet_agents.query.nl.vocabulary import FILLER_VERBS, FILLERS, STOPWORDS
from duet_agents.query.nl.words import Token

# Elements within this factor of a phrase's best stay candidates.
KEEP_FACTOR = 0.85


@dataclass(frozen=True)
class Link:
    """Tokens [start, end) of the question and the elements they may call, best first."""

    start: int
    end: int
    text: str
    candidates: tuple[Candidate, ...]


def link(tokens: list[Token], free: list[bool], lexicon: Lexicon) -> list[Link]:
    """The best cut of the free tokens into linked phrases (free[i]: token i is neither a
    keyword nor part of a date or number phrase)."""
    n = len(tokens)
    # best[i]: (strength, -phrases) of the best cut of tokens[i:], and the phrase it starts with.
    best: list[tuple[tuple[float, int], Link | None]] = [((0.0, 0), None)] * (n + 1)
    for i in range(n - 1, -1, -1):
        best[i] = (best[i + 1][0], None)
        for length in range(1, MAX_PHRASE + 2):
            j = i + length
            if j > n or not all(free[i:j]):
                break
            found = _phrase(tokens, i, j, lexicon)
            if found is None:
                continue
            strength, _ = best[j][0]
            total = (strength + found.candidates[0].score * length, best[j][0][1] - 1)
            if total > best[i][0]:
                best[i] = (total, found)
    links: list[Link] = []
    i = 0
    while i < n:
        chosen = best[i][1]
        if chosen is None:
            i += 1
            continue
        links.append(chosen)
        i = chosen.end
    return links


def _phrase(tokens: list[Token], i: int, j: int, lexicon: Lexicon) -> Link | None:
    words = tokens[i:j]
    if j - i > 1 and (tokens[i].text in STOPWORDS or tokens[j - 1].text in STOPWORDS):
        # Only a value may start or end with a stop word ("The Netherlands").
        candidates = [c for c in lexicon.match(words) if c.via == "value"]
    elif j - i == 1 and tokens[i].text in STOPWORDS:
        return None
    elif j - i == 1 and tokens[i].stem in FILLERS:
        # "placed", "handled": a filler verb links only by a name, never by a comment's word.
        candidates = [c for c in lexicon.match(words) if c.via != "comment"]
    else:
        candidates = lexicon.match(words)
        if tokens[i].stem in FILLER_VERBS or tokens[j - 1].stem in FILLER_VERBS:
            # "orders contain": a comment ("the products each order contains") is no reason
            # to take a filler verb into a phrase.
            candidates = [c for c in candidates if c.via != "comment"]
    if not candidates:
        return None
    top = candidates[0].score
    kept = tuple(c for c in candidates if c.score >= top * KEEP_FACTOR)
    text = " ".join(t.text for t in tokens[i:j])
    return Link(i, j, text, kept)


def unlinked(tokens: list[Token], free: list[bool], links: list[Link]) -> list[int]:
    """Indexes of free tokens that no link covers and that carry meaning."""
    covered = {i for lk in links for i in range(lk.start, lk.end)}
    return [
        i
        for i, token in enumerate(tokens)
        if free[i]
        and i not in covered
        and token.text not in STOPWORDS
        and token.stem not in FILLERS
    ]
