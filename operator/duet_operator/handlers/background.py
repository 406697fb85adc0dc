"""Passes that an event asks for, run beside kopf's worker rather than in it.

kopf hands each object's events to one worker, in order, and a worker reads nothing of its
object while a handler runs. A pod's or a StatefulSet's event handler that waited for its
platform's lock (held by a reconcile, for seconds when many platforms start at once) kept
every later event of that object parsed and queued meanwhile: in a burst of new platforms
that backlog was most of the operator's peak memory. So those handlers only ask for a pass
and return; the pass runs as a task of its own, and one pass covers every event that came
before it started (the caller keeps a set of passes asked for and not yet started).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("duet.operator")


def start(memo: Any, work: Coroutine[Any, Any, None], *, name: str) -> None:
    """Run `work` as a task of the operator's, kept until it ends, its failure logged (an
    event handler's own failure would have been logged by kopf, and nothing retried)."""
    tasks: set[asyncio.Task[None]] = memo.setdefault("background", set())
    task = asyncio.create_task(work, name=name)
    tasks.add(task)
    task.add_done_callback(lambda done: _ended(tasks, done))


def _ended(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    tasks.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("%s failed: %s", task.get_name(), error, exc_info=error)


async def stop(memo: Any) -> None:
    """At shutdown: the passes still waiting or running are cancelled, and awaited."""
    tasks: set[asyncio.Task[None]] = memo.get("background") or set()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
