"""The cron schedules a backup may run on: what Kubernetes' CronJob accepts, checked early.

`CRON_PATTERN` is the shape (five fields or a descriptor such as `@daily`); the API server
enforces it from the CRD. `check_cron` adds what a pattern cannot say well, the range of each
field, so `61 * * * *` is refused with the field named rather than accepted and never run.
(No cron library is among our dependencies; the grammar checked here is the small one
CronJob documents, without `TZ=` prefixes, which CronJob refuses in favour of `timeZone`.)
"""

from __future__ import annotations

import re
from typing import Final

_ITEM = r"(\*|\?|[0-9]{1,2}(-[0-9]{1,2})?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/[0-9]{1,2})?"
_FIELD = rf"{_ITEM}(,{_ITEM})*"
_DESCRIPTORS = "yearly|annually|monthly|weekly|daily|midnight|hourly"
CRON_PATTERN: Final = rf"^(@({_DESCRIPTORS})|{_FIELD}( +{_FIELD}){{4}})$"

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, the names it accepts (their index plus `offset` is their value)
_FIELDS: Final = (
    ("minute", 0, 59, (), 0),
    ("hour", 0, 23, (), 0),
    ("day of month", 1, 31, (), 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day of week", 0, 7, _DAYS, 0),
)
_CRON = re.compile(CRON_PATTERN)


def check_cron(text: str) -> str:
    """Return `text` when it is a schedule CronJob runs; raise ValueError naming the field."""
    if not _CRON.match(text):
        raise ValueError(
            f"{text!r} is not a cron schedule: five fields (minute hour day-of-month month"
            " day-of-week, e.g. `0 2 * * *`) or one of @hourly, @daily, @weekly, @monthly, @yearly"
        )
    if text.startswith("@"):
        return text
    for value, (name, low, high, names, offset) in zip(text.split(), _FIELDS, strict=True):
        for item in value.split(","):
            span, _, step = item.partition("/")
            if step and int(step) == 0:
                raise ValueError(f"{text!r}: the {name} step must be at least 1")
            if span in ("*", "?"):
                if span == "?" and name not in ("day of month", "day of week"):
                    raise ValueError(f"{text!r}: `?` is allowed only in the day fields")
                continue
            bounds = [_value(part, name, names, offset, text) for part in span.split("-")]
            for bound in bounds:
                if not low <= bound <= high:
                    raise ValueError(f"{text!r}: the {name} must be within {low}-{high}")
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise ValueError(f"{text!r}: the {name} range {span} runs backwards")
    return text


def _value(part: str, field: str, names: tuple[str, ...], offset: int, text: str) -> int:
    if part.isdigit():
        return int(part)
    if part.lower() in names:
        return names.index(part.lower()) + offset
    raise ValueError(f"{text!r}: {part!r} is not a {field}")
