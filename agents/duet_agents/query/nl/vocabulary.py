"""The built-in vocabulary: what the analytic words of a question mean, which words carry no
meaning once the tables are linked, and which words a schema may spell differently.

Everything here is data; the parser (reading.py) and the linker (linking.py) interpret it.
Words are matched by stem (words.stem), so one entry covers `order`, `orders` and `ordered`.
"""

from __future__ import annotations

from enum import StrEnum

from duet_agents.query.nl.words import stem


def _words(*groups: str) -> frozenset[str]:
    return frozenset(word for group in groups for word in group.split())


def _stems(*groups: str) -> frozenset[str]:
    return frozenset(stem(word) for word in _words(*groups))


class Agg(StrEnum):
    COUNT = "count"
    COUNT_DISTINCT = "count distinct"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"


class Grain(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


# -- keyword phrases, longest first when several start at one word -------------------------------

# Phrase (space-separated surface words) -> aggregate.
AGGREGATES: dict[str, Agg] = {
    "how many": Agg.COUNT,
    "number of": Agg.COUNT,
    "total number of": Agg.COUNT,
    "count of": Agg.COUNT,
    "count": Agg.COUNT,
    "how much": Agg.SUM,
    "total": Agg.SUM,
    "sum of": Agg.SUM,
    "sum": Agg.SUM,
    "average": Agg.AVG,
    "avg": Agg.AVG,
    "mean": Agg.AVG,
    "minimum": Agg.MIN,
    "min": Agg.MIN,
    "maximum": Agg.MAX,
    "max": Agg.MAX,
}
# Turn a count that follows into a distinct count.
DISTINCT = frozenset({"distinct", "unique", "different"})

# Superlatives: a direction (True: highest first). Each becomes MAX/MIN of a column, or the
# order of a ranking, depending on what follows it.
SUPERLATIVES: dict[str, bool] = {
    "most": True,
    "highest": True,
    "largest": True,
    "biggest": True,
    "greatest": True,
    "top": True,
    "best": True,
    "least": False,
    "fewest": False,
    "lowest": False,
    "smallest": False,
    "bottom": False,
    "worst": False,
}

# Adjectives that order rows by a kind of column: (stem of a column word, highest first).
# "most recent orders", "the cheapest product". `time` stands for the table's time column.
ORDERING_ADJECTIVES: dict[str, tuple[str, bool]] = {
    "recent": ("time", True),
    "latest": ("time", True),
    "newest": ("time", True),
    "oldest": ("time", False),
    "earliest": ("time", False),
    "expensive": ("price", True),
    "priciest": ("price", True),
    "cheapest": ("price", False),
    "cheap": ("price", False),
    "longest": ("duration", True),
    "shortest": ("duration", False),
}

GROUP_WORDS: tuple[str, ...] = (
    "broken down by",
    "grouped by",
    "group by",
    "split by",
    "for each",
    "for every",
    "in each",
    "by",
    "per",
    "each",
    "every",
)
PERIODIC: dict[str, Grain] = {
    "hourly": Grain.HOUR,
    "daily": Grain.DAY,
    "weekly": Grain.WEEK,
    "monthly": Grain.MONTH,
    "quarterly": Grain.QUARTER,
    "yearly": Grain.YEAR,
    "annual": Grain.YEAR,
    "annually": Grain.YEAR,
}
GRAINS: dict[str, Grain] = {
    "hour": Grain.HOUR,
    "day": Grain.DAY,
    "date": Grain.DAY,
    "week": Grain.WEEK,
    "month": Grain.MONTH,
    "quarter": Grain.QUARTER,
    "year": Grain.YEAR,
}

NEGATIONS = frozenset({"never", "without", "no", "not", "none"})

# Comparison phrase -> SQL operator. A number follows, then perhaps a unit.
COMPARISONS: dict[str, str] = {
    "more than": ">",
    "greater than": ">",
    "higher than": ">",
    "larger than": ">",
    "bigger than": ">",
    "longer than": ">",
    "over": ">",
    "above": ">",
    "exceeding": ">",
    "at least": ">=",
    "less than": "<",
    "fewer than": "<",
    "lower than": "<",
    "smaller than": "<",
    "shorter than": "<",
    "cheaper than": "<",
    "under": "<",
    "below": "<",
    "at most": "<=",
    "exactly": "=",
    "equal to": "=",
}
# Words a number may carry; they say nothing the column does not.
UNITS = _words(
    "second seconds sec secs minute minutes min mins hour hours ms millisecond milliseconds",
    "euro euros eur dollar dollars usd percent point points star stars item items unit units",
)

# -- words with no meaning of their own here ---------------------------------------------------

STOPWORDS = _words(
    "a an the of for in on at to from with into within about as and or than then",
    "is are was were be been being am do does did done doing have has had having",
    "there here what which who whom whose that this these those it its they them their",
    "we our us you your i me my he she his her how when where why",
    "show list give tell find get display return fetch see",
    "please can could would should will shall may might must",
    "all any some ever so far overall altogether currently now ago still yet already just",
    "by per each every one ones",
)
# Verbs and nouns that only connect the words that matter ("orders placed", "tickets
# handled", "sessions that came from", "the value of"), when nothing links them. Stems.
FILLER_VERBS = _stems(
    "place make made come came happen occur record register sell sold buy bought",
    "handle work take took bring brought generate contain include belong have get got",
    "receive received submit submitted go went open opened start started use used raise",
)
FILLERS = FILLER_VERBS | _stems("row rows record records entry entries value values amount")

# -- synonyms: words an analyst uses for what a schema may call otherwise ------------------------

# Each group is a set of interchangeable words; a question word links to a table or column
# whose name has another word of its group. Stems.
SYNONYM_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(stem(w) for w in group.split())
    for group in (
        "revenue sales turnover income amount",
        "customer client buyer shopper",
        "user member account visitor",
        "product item article sku",
        "order purchase sold bought",
        "price cost",
        "quantity qty",
        "duration length lasted last long",
        "session visit",
        "view pageview hit",
        "url page path address link",
        "country nation",
        "city town",
        "category type kind",
        "ticket case request issue",
        "agent rep representative staff",
        "score rating grade",
        "email mail",
        "name title",
        "plan tier subscription",
        "source channel referrer medium",
        "device platform",
        "signup registration",
        "hire join",
        "date day time when",
        "seconds time",
        "minutes time",
        "ms time",
        "milliseconds time",
    )
)

# Column name words that say what a column is measured in or how it is stored rather than
# what it is: `duration_seconds` is the duration, `created_at` the creation.
NOISE_NAME_WORDS = _stems(
    "id at on ts seconds secs minutes mins hours ms millis milliseconds eur usd"
)

# Words that mark a numeric column as one that adds up (a sum is its natural aggregate).
ADDITIVE_WORDS = _stems(
    "amount total revenue sales value quantity qty cost spend spent count turnover income",
    "views clicks units",
)
# The column kinds ORDERING_ADJECTIVES and "highest/lowest" name.
PRICE_WORDS = frozenset(stem(w) for w in ("price", "cost", "amount", "total", "value"))
DURATION_WORDS = frozenset(stem(w) for w in ("duration", "seconds", "minutes", "time", "length"))
# Columns that name a row for a reader, in order of preference.
LABEL_NAMES = ("name", "title", "full_name", "display_name", "label", "email", "url", "subject")


def synonyms(word_stem: str) -> frozenset[str]:
    """The stems interchangeable with `word_stem`, itself included."""
    found = {word_stem}
    for group in SYNONYM_GROUPS:
        if word_stem in group:
            found |= group
    return frozenset(found)
