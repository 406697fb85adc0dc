"""Volumes only grow, and a StatefulSet's immutable fields are never sent changed."""

from __future__ import annotations

from typing import Any

from duet_operator.render.naming import Names
from duet_operator.volumes import (
    claim_growth,
    keep_immutable_fields,
    templates_behind,
    wanted_sizes,
)
from tests.support.platforms import design

NAMES = Names("clicks", "analytics")


def claim(name: str, size: str, phase: str = "Bound") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "analytics"},
        "spec": {"resources": {"requests": {"storage": size}}},
        "status": {"phase": phase},
    }


def test_only_smaller_claims_grow() -> None:
    sizes = wanted_sizes(NAMES, design())
    assert sizes["clicks-clickhouse-1"] == "1400Gi"
    assert sizes["clicks-keeper"] == "10Gi"
    patches = claim_growth(
        sizes,
        [
            claim("data-clicks-clickhouse-1-0", "1000Gi"),
            claim("data-clicks-clickhouse-1-1", "2Ti"),  # larger: never shrunk
            claim("data-clicks-keeper-2", "10Gi"),
            claim("data-unrelated-0", "1Gi"),
            # Not bound yet: the API server refuses to resize it (grown once bound).
            claim("data-clicks-clickhouse-1-2", "1000Gi", phase="Pending"),
        ],
    )
    assert patches == [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-clicks-clickhouse-1-0", "namespace": "analytics"},
            "spec": {"resources": {"requests": {"storage": "1400Gi"}}},
        }
    ]


def test_existing_statefulsets_keep_their_claim_templates_and_selector() -> None:
    rendered: dict[str, Any] = {
        "kind": "StatefulSet",
        "metadata": {"name": "clicks-clickhouse-0"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"resources": {"requests": {"storage": "2Ti"}}},
                }
            ],
        },
    }
    live_template = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": {"x": "y"}, "creationTimestamp": None},
        "spec": {"resources": {"requests": {"storage": "1Ti"}}, "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"},
    }
    live = {
        "metadata": {"name": "clicks-clickhouse-0"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"a": "b"}},
            "volumeClaimTemplates": [live_template],
        },
    }
    (kept,) = keep_immutable_fields([rendered], [live])
    assert kept["spec"]["replicas"] == 2, "mutable fields follow the design"
    assert kept["spec"]["volumeClaimTemplates"] == [
        {"metadata": {"name": "data", "labels": {"x": "y"}}, "spec": live_template["spec"]}
    ]
    assert (
        rendered["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        == "2Ti"
    )
    (new,) = keep_immutable_fields([rendered], [])
    assert new == rendered


def test_a_template_smaller_than_the_wanted_size_is_behind() -> None:
    def statefulset(size: str) -> dict[str, Any]:
        return {
            "metadata": {"name": "clicks-clickhouse-0"},
            "spec": {
                "volumeClaimTemplates": [
                    {"metadata": {"name": "data"},
                     "spec": {"resources": {"requests": {"storage": size}}}}
                ]
            },
        }  # fmt: skip

    sizes = {"clicks-clickhouse-0": "200Gi"}
    assert templates_behind(sizes, [statefulset("100Gi")])
    assert not templates_behind(sizes, [statefulset("200Gi")])
    assert not templates_behind(sizes, [statefulset("300Gi")])
    assert not templates_behind({}, [statefulset("100Gi")]), "not the design's: left alone"
