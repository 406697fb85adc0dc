"""Keeper membership changes, one member at a time and only while the ensemble is whole.

A Raft ensemble that gains or loses several members at once can split: two new members and
an old one may each believe they are a majority (clickhouse-operator issues 1661 and 1935).
So a design that wants a different number of Keeper members is reached in steps of one,
and each step waits until every member of the previous one runs the current template and
is Ready. The raft configuration lists exactly the members of the step; Keeper applies a
changed list from its configuration file without a restart, one server at a time.

A new ensemble (no Keeper yet) and a removed one (the design wants none) need no steps:
there is no quorum to keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


@dataclass(frozen=True)
class KeeperStep:
    members: int  # what to render now
    wanted: int  # what the design asks for
    joining: int | None = None  # the ordinal of a member added to a running ensemble
    stepped: bool = False  # this step changes the members of a running ensemble

    @property
    def done(self) -> bool:
        return self.members == self.wanted

    def message(self) -> str:
        return f"Keeper membership changing one member at a time: {self.members} of {self.wanted}"


def keeper_step(wanted: int, live: Manifest | None) -> KeeperStep:
    """The Keeper members to render, given the design's `wanted` and the StatefulSet as
    stored (None when there is none)."""
    current = _replicas(live)
    if current == 0 or wanted in (0, current):
        return KeeperStep(wanted, wanted)
    if live is None or not settled(live):
        # The step in progress, its newcomer still marked as one.
        joining = current - 1 if wanted > current else None
        return KeeperStep(current, wanted, joining=joining)
    if wanted > current:
        return KeeperStep(current + 1, wanted, joining=current, stepped=True)
    return KeeperStep(current - 1, wanted, stepped=True)


def settled(statefulset: Manifest) -> bool:
    """Every member the StatefulSet asks for is Ready on its current template, and the
    controller has seen the latest spec: the quorum is whole."""
    spec = statefulset.get("spec", {})
    status = statefulset.get("status", {})
    replicas = spec.get("replicas", 1)
    generation = statefulset.get("metadata", {}).get("generation")
    seen = generation is None or status.get("observedGeneration", 0) >= generation
    revision = status.get("updateRevision")
    current = status.get("currentRevision", revision)
    return (
        seen
        and status.get("readyReplicas", 0) == replicas
        and status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and bool(current == revision)
    )


def _replicas(live: Manifest | None) -> int:
    if live is None:
        return 0
    return int(live.get("spec", {}).get("replicas", 0))
