"""Keeper membership changes one member at a time, each once the ensemble is whole."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from duet_operator.membership import KeeperStep, keeper_step, settled
from duet_operator.render.config import RenderConfig
from duet_operator.render.keeper import build_keeper, keeper_config
from duet_operator.render.naming import Names
from tests.support.platforms import design, platform


def keeper_sts(
    replicas: int, *, ready: int | None = None, updated: int | None = None,
    generation: int = 3, observed: int = 3, revisions: tuple[str, str] = ("r2", "r2"),
) -> dict[str, Any]:  # fmt: skip
    ready = replicas if ready is None else ready
    return {
        "metadata": {"name": "clicks-keeper", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
            "observedGeneration": observed,
            "currentRevision": revisions[0],
            "updateRevision": revisions[1],
        },
    }


def test_a_new_or_removed_ensemble_takes_the_design_at_once() -> None:
    assert keeper_step(3, None) == KeeperStep(3, 3)
    assert keeper_step(3, keeper_sts(0)) == KeeperStep(3, 3)
    assert keeper_step(0, keeper_sts(3)) == KeeperStep(0, 0)
    assert keeper_step(3, keeper_sts(3)).done


def test_growing_adds_one_member_and_marks_it_as_joining() -> None:
    step = keeper_step(5, keeper_sts(3))
    assert (step.members, step.wanted, step.joining, step.stepped) == (4, 5, 3, True)
    assert not step.done
    assert step.message() == ("Keeper membership changing one member at a time: 4 of 5")


def test_shrinking_removes_one_member() -> None:
    step = keeper_step(3, keeper_sts(5))
    assert (step.members, step.joining, step.stepped) == (4, None, True)


@pytest.mark.parametrize(
    "live",
    [
        keeper_sts(4, ready=3),  # the newcomer is not Ready yet
        keeper_sts(4, updated=3),  # a member still runs the previous template
        keeper_sts(4, observed=2),  # the controller has not seen the step yet
        keeper_sts(4, revisions=("r1", "r2")),  # a rollout in progress
    ],
    ids=["not-ready", "not-updated", "not-observed", "rolling"],
)
def test_no_next_step_until_the_ensemble_is_whole(live: dict[str, Any]) -> None:
    assert not settled(live)
    step = keeper_step(5, live)
    assert (step.members, step.joining, step.stepped) == (4, 3, False), (
        "the step in progress is held, its newcomer still marked"
    )
    assert keeper_step(3, live).members == 4, "and no member is removed meanwhile"


def test_a_whole_ensemble_is_settled() -> None:
    assert settled(keeper_sts(3))


NAMES = Names("clicks", "analytics")


def servers(config_xml: str) -> list[dict[str, Any]]:
    root = ElementTree.fromstring(config_xml)
    return [{child.tag: child.text for child in server} for server in root.iter("server")]


def test_the_raft_configuration_lists_the_step_and_its_newcomer_starts_as_follower() -> None:
    listed = servers(keeper_config(NAMES, 4, joining=3))
    assert [s["id"] for s in listed] == ["1", "2", "3", "4"]
    assert [s.get("start_as_follower") for s in listed] == [None, None, None, "true"]
    assert all("start_as_follower" not in s for s in servers(keeper_config(NAMES, 3)))


def test_a_membership_step_does_not_restart_the_members() -> None:
    p = platform()
    d = design(shards=1, replicas=2, keeper=5)

    def rendered(members: int, joining: int | None = None) -> dict[str, Any]:
        objects = build_keeper(p, d, RenderConfig(), members, joining)
        return {m["kind"]: m for m in objects if m["kind"] in ("StatefulSet", "ConfigMap")}

    three, four = rendered(3), rendered(4, joining=3)
    assert three["StatefulSet"]["spec"]["replicas"] == 3
    assert four["StatefulSet"]["spec"]["replicas"] == 4
    # Keeper reads the new member list from its file: the pod template is the same, so the
    # StatefulSet rolls no member for it.
    assert three["StatefulSet"]["spec"]["template"] == four["StatefulSet"]["spec"]["template"]
    config = yaml.safe_dump(four["ConfigMap"]["data"])
    assert "start_as_follower" in config
