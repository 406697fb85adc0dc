"""When a pod event or the healer's timer asks for a pass, and when a platform still coming up
is passed over without reading it (kopf's index of new platforms)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from duet_operator.handlers import background
from duet_operator.handlers.healing import coming_up_entry, heal_platform, heal_platform_of
from duet_operator.healing import HealSettings
from duet_operator.main import build_registry
from duet_operator.render.naming import PLATFORM_LABEL
from duet_operator.settings import OperatorSettings

pytestmark = pytest.mark.anyio
GRACE = HealSettings().provisioning_grace_seconds
PENDING_POD = {"phase": "Pending"}


def ago(seconds: float) -> datetime:
    """A creation time, from the clock when the test runs (not when the module is imported:
    a run can collect this file many minutes before it gets to it)."""
    return datetime.now(UTC) - timedelta(seconds=seconds)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Unreachable:
    """The healer's API client where no read is expected: any call fails the test."""

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"read the platform: {args}")


class FakeHealer:
    def __init__(self) -> None:
        self.settings = HealSettings()
        self.waiting: set[str] = set()
        self.verifying: set[str] = set()
        self.kube = Unreachable()

    def is_quiet(self, key: str) -> bool:
        return False


def memo() -> kopf.Memo:
    found = kopf.Memo()
    found.healer = FakeHealer()
    return found


async def pod_event(memo: kopf.Memo, index: dict[str, list[datetime]]) -> None:
    await heal_platform_of(
        type="MODIFIED",
        labels={PLATFORM_LABEL: "web"},
        status=PENDING_POD,
        namespace="shop",
        memo=memo,
        coming_up=index,
    )


async def passes_asked(memo: kopf.Memo) -> list[str]:
    tasks = memo.get("background") or set()
    names = sorted(t.get_name() for t in tasks)
    await background.stop(memo)
    return names


def test_the_index_holds_platforms_not_yet_provisioned_with_their_age() -> None:
    # An empty answer, not None, for the others: that is what takes a platform out of it.
    created = "2026-11-24T10:00:00Z"

    def entry(status: dict[str, Any], **meta: Any) -> dict[str, datetime]:
        return coming_up_entry(
            name="web",
            namespace="shop",
            meta={"creationTimestamp": created, **meta},
            status=status,
        )

    when = datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert entry({}) == {"shop/web": when}
    assert entry({"phase": "Planning"}) == {"shop/web": when}
    assert entry({"phase": "Provisioning"}) == {"shop/web": when}
    for phase in ("Ready", "Degraded", "Failed"):
        assert entry({"phase": phase}) == {}, phase
    assert entry({"phase": "Provisioning"}, deletionTimestamp=created) == {}


async def test_a_pod_event_of_a_platform_coming_up_asks_for_no_pass() -> None:
    found = memo()
    await pod_event(found, {"shop/web": [ago(5)]})
    assert found.healer.waiting == set()
    assert await passes_asked(found) == []


async def test_a_pod_event_past_the_grace_or_of_a_provisioned_platform_asks_for_one() -> None:
    late = memo()
    await pod_event(late, {"shop/web": [ago(GRACE + 1)]})
    assert late.healer.waiting == {"shop/web"}
    assert await passes_asked(late) == ["heal pass of shop/web"]

    provisioned = memo()
    await pod_event(provisioned, {})  # Ready: not in the index
    assert await passes_asked(provisioned) == ["heal pass of shop/web"]


async def test_the_timer_passes_over_a_platform_coming_up_without_reading_it() -> None:
    found = memo()
    found.locks = {}
    await heal_platform(
        name="web",
        namespace="shop",
        status={"phase": "Provisioning"},
        memo=found,
        coming_up={"shop/web": [ago(0)]},
    )
    # Past the grace, the pass reads the platform (here: the read that fails the test).
    with pytest.raises(AssertionError, match="read the platform"):
        await heal_platform(
            name="web",
            namespace="shop",
            status={"phase": "Provisioning"},
            memo=found,
            coming_up={"shop/web": [ago(GRACE + 1)]},
        )


def test_kopf_hands_the_index_to_the_handlers_under_the_name_they_take() -> None:
    registry = build_registry(OperatorSettings(), None)
    indexes = {h.id for h in registry._indexing.get_all_handlers()}
    assert "coming_up" in indexes
    for handler in (heal_platform, heal_platform_of):
        assert "coming_up" in inspect.signature(handler).parameters, handler.__name__
