"""Date expressions in a question, as half-open ranges of days: "in 2024", "in March 2025",
"on 2025-03-05", "between 2025-01-01 and 2025-03-31", "since May 2024", "last 30 days",
"last month", "this year", "yesterday", "Q1 2025".

Relative expressions are read against `today`, a parameter, so answers are reproducible:
- "last N days|weeks|months|years", "past N ..." and "past month" are rolling windows: from
  `today` minus N units up to the end of today.
- "last week|month|quarter|year" (no number) is the previous calendar period; "this ..." the
  current one up to the end of today.
- A month without a year ("in March") is its latest occurrence that has begun by `today`.
Ranges end exclusively: "in 2024" is [2024-01-01, 2025-01-01).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class DateRange:
    """[start, end) in days; None is unbounded on that side."""

    start: date | None
    end: date | None
    # The words it was read from, for the explanation.
    text: str

    def describe(self) -> str:
        if self.start and self.end:
            last = self.end - timedelta(days=1)
            if last == self.start:
                return f"on {self.start.isoformat()}"
            return f"from {self.start.isoformat()} to {last.isoformat()}"
        if self.start:
            return f"from {self.start.isoformat()} on"
        if self.end:
            return f"before {self.end.isoformat()}"
        return "at any time"


@dataclass(frozen=True)
class DateMention:
    range: DateRange
    # Offsets in the normalized question (words.normalize).
    start: int
    end: int


_MONTHS = {
    name: number
    for number in range(1, 13)
    for name in (calendar.month_name[number].lower(), calendar.month_abbr[number].lower())
}
_MONTHS["sept"] = 9
_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?:19|20)\d\d"
_UNIT = r"(?:day|week|month|quarter|year)s?"


def _point(p: str, *, bare_month: bool = True) -> str:
    """A point in time at some grain, its forms in groups named with the prefix `p`: a day
    (ISO, "March 5, 2025", "5 March 2025"), a month ("2025-03", "March 2025", "March"), a
    quarter ("Q1 2025") or a year."""
    forms = [
        rf"(?P<{p}iso>{_YEAR}-\d{{1,2}}-\d{{1,2}})",
        rf"(?P<{p}mdy>{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+{_YEAR})",
        rf"(?P<{p}dmy>\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+{_YEAR})",
        rf"(?P<{p}ym>{_YEAR}-\d{{1,2}})(?![\d-])",
        rf"(?P<{p}my>{_MONTH}\s+(?:of\s+)?{_YEAR})",
        rf"(?P<{p}q>q[1-4]\s+{_YEAR})",
        rf"(?P<{p}y>{_YEAR})",
    ]
    if bare_month:
        # "in March"; never a bare "may", which is a verb far more often than a month.
        forms.insert(-1, rf"(?P<{p}m>(?!may\b){_MONTH})(?!\s*\d)")
    return "(?:" + "|".join(forms) + ")"


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "between",
        re.compile(
            rf"\b(?:between|from)\s+{_point('a')}\s+(?:and|to|until|till|through|-)\s+"
            rf"{_point('b')}\b"
        ),
    ),
    (
        "rolling",
        re.compile(
            rf"\b(?:(?:in|over|during|for)\s+)?(?:the\s+)?(?:last|past)\s+(?P<n>\d+)\s+"
            rf"(?P<unit>{_UNIT})\b"
        ),
    ),
    (
        "rolling",
        re.compile(rf"\b(?:(?:in|over|during|for)\s+)?(?:the\s+)?past\s+(?P<unit>{_UNIT})\b"),
    ),
    (
        "previous",
        re.compile(
            rf"\b(?:(?:in|during|for)\s+)?(?:the\s+)?(?:last|previous)\s+(?P<unit>{_UNIT})\b"
        ),
    ),
    ("current", re.compile(rf"\b(?:(?:in|during|for)\s+)?this\s+(?P<unit>{_UNIT})\b")),
    ("ytd", re.compile(r"\b(?:year\s+to\s+date|ytd)\b")),
    ("today", re.compile(r"\btoday\b")),
    ("yesterday", re.compile(r"\byesterday\b")),
    ("since", re.compile(rf"\bsince\s+{_point('a')}\b")),
    ("after", re.compile(rf"\bafter\s+{_point('a')}\b")),
    ("before", re.compile(rf"\bbefore\s+{_point('a')}\b")),
    ("until", re.compile(rf"\b(?:until|till|through|up\s+to)\s+{_point('a')}\b")),
    ("point", re.compile(rf"\b(?:in|during|on|for|of)\s+{_point('a')}\b")),
    ("point", re.compile(rf"\b{_point('a', bare_month=False)}\b")),
]


def find_dates(text: str, today: date) -> list[DateMention]:
    """The date expressions of `text`, left to right, none overlapping another; offsets are
    into `text` (lower-casing keeps them)."""
    text = text.lower()
    taken: list[tuple[int, int]] = []
    found: list[DateMention] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            span = match.span()
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            read = _read(kind, match, today)
            if read is None:
                continue
            taken.append(span)
            found.append(DateMention(DateRange(read[0], read[1], match.group().strip()), *span))
    return sorted(found, key=lambda m: m.start)


Bounds = tuple[date | None, date | None]


def _read(kind: str, match: re.Match[str], today: date) -> Bounds | None:
    if kind in _RELATIVE:
        return _RELATIVE[kind](match, today)
    if kind == "between":
        a, b = _period(match, "a", today), _period(match, "b", today)
        return None if a is None or b is None else (a[0], b[1])
    period = _period(match, "a", today)
    if period is None:
        return None
    # "since" a period takes its start, "after" its end, "before" its start, "until" its end.
    return {
        "since": (period[0], None),
        "after": (period[1], None),
        "before": (None, period[0]),
        "until": (None, period[1]),
    }.get(kind, period)


def _rolling(match: re.Match[str], today: date) -> Bounds:
    n, unit = int(match.groupdict().get("n") or 1), _unit(match.group("unit"))
    return _minus(today, unit, n), today + timedelta(days=1)


def _previous(match: re.Match[str], today: date) -> Bounds:
    unit = _unit(match.group("unit"))
    start = _start_of(unit, today)
    return _minus(start, unit, 1), start


def _current(match: re.Match[str], today: date) -> Bounds:
    return _start_of(_unit(match.group("unit")), today), today + timedelta(days=1)


_RELATIVE: dict[str, Callable[[re.Match[str], date], Bounds]] = {
    "rolling": _rolling,
    "previous": _previous,
    "current": _current,
    "ytd": lambda _, today: (date(today.year, 1, 1), today + timedelta(days=1)),
    "today": lambda _, today: (today, today + timedelta(days=1)),
    "yesterday": lambda _, today: (today - timedelta(days=1), today),
}


def _unit(word: str) -> str:
    return word.rstrip("s")


def _minus(day: date, unit: str, n: int) -> date:
    if unit == "day":
        return day - timedelta(days=n)
    if unit == "week":
        return day - timedelta(weeks=n)
    return add_months(day, -n * {"month": 1, "quarter": 3, "year": 12}[unit])


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _start_of(unit: str, day: date) -> date:
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def _period(match: re.Match[str], prefix: str, today: date) -> tuple[date, date] | None:
    """The [start, end) of the point matched under `prefix`, or None for an impossible date."""
    groups = {k[len(prefix) :]: v for k, v in match.groupdict().items() if k.startswith(prefix)}
    try:
        if groups.get("iso"):
            y, m, d = (int(x) for x in groups["iso"].split("-"))
            return _day(date(y, m, d))
        if groups.get("mdy"):
            parts = re.findall(r"[a-z]+|\d+", groups["mdy"])
            return _day(date(int(parts[2]), _MONTHS[parts[0]], int(parts[1])))
        if groups.get("dmy"):
            parts = [p for p in re.findall(r"[a-z]+|\d+", groups["dmy"]) if p != "of"]
            day_number = int(re.sub(r"\D", "", parts[0]))
            return _day(date(int(parts[-1]), _MONTHS[parts[1]], day_number))
        if groups.get("ym"):
            y, m = (int(x) for x in groups["ym"].split("-"))
            return _month(y, m)
        if groups.get("my"):
            parts = [p for p in re.findall(r"[a-z]+|\d+", groups["my"]) if p != "of"]
            return _month(int(parts[-1]), _MONTHS[parts[0]])
        if groups.get("q"):
            quarter, year = int(groups["q"][1]), int(groups["q"].split()[-1])
            start = date(year, 3 * quarter - 2, 1)
            return start, add_months(start, 3)
        if groups.get("m"):
            month = _MONTHS[groups["m"].rstrip(".")]
            year = today.year if month <= today.month else today.year - 1
            return _month(year, month)
        if groups.get("y"):
            year = int(groups["y"])
            return date(year, 1, 1), date(year + 1, 1, 1)
    except ValueError:
        return None
    return None


def _day(day: date) -> tuple[date, date]:
    return day, day + timedelta(days=1)


def _month(year: int, month: int) -> tuple[date, date]:
    start = date(year, month, 1)
    return start, add_months(start, 1)
