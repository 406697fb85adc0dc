"""Words: splitting a question and an identifier into tokens, and reducing them to stems.

A question and a schema meet on stems: `orders`, `ordered` and `order_id` all reduce to `order`,
`ratings` and `rated` to `rat`, `signed_up_at` to `sign up at`. The rules are a few lines of
English morphology (plurals, -ed and -ing, doubled consonants, a silent e), deliberately
small: a stem only has to be the same for the forms an analyst types and the names a schema
uses, not be a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    """A word of the question: its text as typed (lower-cased), its stem, and where it sits."""

    text: str
    stem: str
    start: int
    end: int


# Words, and numbers with an optional decimal part ("4.5"); apostrophes are folded first.
_WORD = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# The apostrophe typed, or the one word processors put in its place (U+2019).
_NOT = re.compile("n['\u2019]t\\b")
_POSSESSIVE = re.compile("['\u2019]s\\b")


def normalize(text: str) -> str:
    """Lower case, "didn't" -> "did not", "customer's" -> "customer", & -> and. Dates and
    numbers are found in this text too, so offsets of tokens and of dates agree."""
    lowered = _NOT.sub(" not", text.lower())
    return _POSSESSIVE.sub("", lowered).replace("&", " and ")


def tokenize(text: str) -> list[Token]:
    """The words and numbers of `text`, lower-cased and stemmed, with their offsets; a
    phrasal verb ("signed up") is one token, as its noun ("signup") would be."""
    tokens: list[Token] = []
    for m in _WORD.finditer(normalize(text)):
        word = m.group()
        if tokens and (joined := _compound(tokens[-1].text, word)) is not None:
            tokens[-1] = Token(f"{tokens[-1].text} {word}", joined, tokens[-1].start, m.end())
            continue
        tokens.append(Token(word, stem(word), m.start(), m.end()))
    return tokens


# Phrasal verbs and their nouns, which schemas spell either way (`signed_up_at`, `signup_date`).
_COMPOUNDS = {("sign", "up"): "signup", ("log", "in"): "login", ("check", "out"): "checkout"}


def _compound(first: str, second: str) -> str | None:
    return _COMPOUNDS.get((stem(first), second))


def split_identifier(name: str) -> list[str]:
    """`total_amount` -> total, amount; `signedUpAt` -> signed, up, at; `loadTimeMS` -> load,
    time, ms; `page-views` -> page, views."""
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        words.extend(w.lower() for w in _CAMEL.split(part) if w)
    return words


def phrase_words(text: str) -> list[str]:
    """The words of a phrase, an identifier or a value, lower-cased."""
    return [
        w for chunk in split_identifier(text.replace("&", " and ")) for w in _WORD.findall(chunk)
    ]


def phrase_stems(text: str) -> tuple[str, ...]:
    """The stems of a phrase, an identifier or a value, for comparing with a question's."""
    stems: list[str] = []
    previous = ""
    for word in phrase_words(text):
        if stems and (joined := _compound(previous, word)) is not None:
            stems[-1] = joined
        else:
            stems.append(stem(word))
        previous = word
    return tuple(stems)


def value_words(text: str) -> tuple[str, ...]:
    """A value's words as a question would match them: lower case, singular, not stemmed
    ("signups" finds 'signup', "opened" does not find 'open')."""
    return tuple(singular(w) for w in phrase_words(text))


_IRREGULAR_PLURALS = {
    "people": "person",
    "children": "child",
    "men": "man",
    "women": "woman",
    "criteria": "criterion",
    "analyses": "analysis",
}
_VOWELS = "aeiou"
# Doubling survives in these (`add`, `all`, `miss`), so it is kept.
_KEEP_DOUBLE = "lsz"


def singular(word: str) -> str:
    """The singular of an English plural, by the usual rules; anything else unchanged."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def stem(word: str) -> str:
    """A crude stem: singular, then without -ed or -ing, a doubled final consonant or a final
    e. `ordered` and `orders` -> order; `rated`, `ratings`, `rate` -> rat; `cancelled` ->
    cancel; `signups` -> signup. Numbers are their own stem."""
    if not word.isalpha():
        return word
    w = singular(word)
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            base = w[: -len(suffix)]
            if (
                len(base) >= 4 and base[-1] == base[-2] and base[-1] not in _VOWELS + _KEEP_DOUBLE
            ) or (base.endswith("ll") and len(base) > 4):
                base = base[:-1]
            elif base.endswith("i"):
                base = base[:-1] + "y"
            w = base
            break
    if w.endswith("e") and len(w) > 3 and w[-2] not in _VOWELS:
        w = w[:-1]
    return w


_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "fifty": 50,
    "hundred": 100,
}


def number(word: str) -> float | None:
    """The value of a numeral or a small number word, else None."""
    if word in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[word])
    try:
        return float(word)
    except ValueError:
        return None
