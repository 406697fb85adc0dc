"""Waiting on conditions with a deadline: the one way tests wait (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """The condition did not hold before the deadline; says what was last seen."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Call `probe` until it returns something truthy, and return that.

    Exceptions of the types in `ignore` count as "not yet" (a pod not created yet, say); any
    other propagates at once. The last value or exception seen is reported at the deadline,
    so a failing test says what it saw rather than only that it waited.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except ignore as e:
            last = e
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}; last saw: {last!r}"
            )
        time.sleep(interval)
