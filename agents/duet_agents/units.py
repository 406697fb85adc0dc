"""Kubernetes quantities and Go-style durations, parsed and printed exactly.

The planner reasons in bytes, cores and seconds; users and manifests speak `2Ti`, `500m` and
`1s`. Decimal arithmetic keeps `0.1` CPU from turning into `0.30000000000000004`, and printing
picks the largest binary unit that represents a value exactly, as kubectl does.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# The grammar of resource.Quantity (k8s.io/apimachinery/pkg/api/resource), minus exponents
# written with a capital E, which nobody uses for sizes.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"m": Decimal("0.001")} | {
    suffix: Decimal(10) ** (3 * power) for power, suffix in enumerate("kMGTPE", start=1)
}
_QUANTITY = re.compile(QUANTITY_PATTERN)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_SECONDS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}

GiB = 2**30
TiB = 2**40


def parse_quantity(value: str | int | float) -> Decimal:
    """`2Ti` -> 2199023255552, `500m` -> 0.5, `4` -> 4. Raises ValueError on anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    text = str(value).strip()
    if not _QUANTITY.match(text):
        raise ValueError(f"{value!r} is not a quantity (examples: 500Gi, 2Ti, 4, 500m)")
    number = text.rstrip("kmMGTPEi")
    suffix = text[len(number) :]
    try:
        base = Decimal(number)
    except InvalidOperation as e:  # pragma: no cover - the pattern already rules this out
        raise ValueError(f"{value!r} is not a quantity") from e
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    if suffix:
        return base * _DECIMAL[suffix]
    return base


def format_bytes(value: int | Decimal) -> str:
    """Bytes as the largest binary unit that holds them exactly: 2199023255552 -> `2Ti`."""
    amount = int(value)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if amount >= unit and amount % unit == 0:
            return f"{amount // unit}{suffix}"
    return str(amount)


def format_cpu(cores: Decimal | int | float) -> str:
    """Cores as Kubernetes writes them: 4 -> `4`, 0.5 -> `500m`."""
    amount = Decimal(str(cores))
    if amount == amount.to_integral_value():
        return str(int(amount))
    return f"{int(amount * 1000)}m"


def parse_duration(value: str) -> Decimal:
    """`1s` -> 1, `250ms` -> 0.25, `1m30s` -> 90. Raises ValueError on anything else."""
    text = value.strip()
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{value!r} is not a duration (examples: 500ms, 1s, 2m)")
    return sum(
        (Decimal(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text)), Decimal(0)
    )
