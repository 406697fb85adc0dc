"""Passes run beside kopf's workers: kept while they run, their failures logged, and
cancelled at shutdown rather than left to die with the loop."""

from __future__ import annotations

import asyncio
import logging

import kopf
import pytest

from duet_operator.handlers import background

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_pass_is_kept_while_it_runs_and_forgotten_once_it_ends() -> None:
    memo = kopf.Memo()
    release = asyncio.Event()
    ran: list[str] = []

    async def work() -> None:
        await release.wait()
        ran.append("done")

    background.start(memo, work(), name="refresh of ns/a")
    await asyncio.sleep(0)
    assert [t.get_name() for t in memo["background"]] == ["refresh of ns/a"]

    release.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert ran == ["done"]
    assert memo["background"] == set()


async def test_a_failed_pass_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    memo = kopf.Memo()

    async def work() -> None:
        raise RuntimeError("the API server went away")

    with caplog.at_level(logging.ERROR, logger="duet.operator"):
        background.start(memo, work(), name="heal pass of ns/b")
        for _ in range(3):
            await asyncio.sleep(0)

    (record,) = caplog.records
    assert "heal pass of ns/b failed: the API server went away" in record.getMessage()
    assert memo["background"] == set()


async def test_stop_cancels_the_passes_still_waiting_and_waits_for_them() -> None:
    memo = kopf.Memo()
    cancelled: list[bool] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    background.start(memo, work(), name="refresh of ns/c")
    await asyncio.sleep(0)

    # (A bound so that a stop that forgot to cancel fails rather than hangs.)
    await asyncio.wait_for(background.stop(memo), timeout=30)

    assert cancelled == [True]
    assert memo["background"] == set()


async def test_stop_with_nothing_started_is_quiet() -> None:
    await background.stop(kopf.Memo())
