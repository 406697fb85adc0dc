"""An object is applied again only when the stored one lacks something we set."""

from __future__ import annotations

import base64
import copy
from typing import Any

from duet_operator.drift import STAMP, drift_of, stamp, unchanged
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from tests.support.platforms import SECRETS, design, platform


def stored(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API server would hand back: our fields plus defaults and status."""
    obj = copy.deepcopy(manifest)
    obj["metadata"] |= {"uid": "u", "resourceVersion": "7", "managedFields": [{"manager": "duet"}]}
    obj["metadata"].setdefault("annotations", {})["other.tool/note"] = "x"
    if obj["kind"] == "Secret":
        obj["data"] = {
            k: base64.b64encode(v.encode()).decode() for k, v in obj.pop("stringData").items()
        }
    if obj["kind"] == "StatefulSet":
        container = obj["spec"]["template"]["spec"]["containers"][0]
        container |= {
            "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
        }
        obj["status"] = {"replicas": 2, "readyReplicas": 2}
    return obj


def test_every_rendered_object_as_stored_counts_as_unchanged() -> None:
    for manifest in build_platform(platform(), design(), RenderConfig(), SECRETS):
        desired = stamp(manifest)
        assert unchanged(desired, stored(desired)), manifest["metadata"]["name"]


def rendered(kind: str, name: str) -> dict[str, Any]:
    manifests = build_platform(platform(), design(), RenderConfig(), SECRETS)
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def test_missing_edited_or_restamped_objects_are_applied() -> None:
    desired = stamp(rendered("StatefulSet", "clicks-clickhouse-0"))
    assert not unchanged(desired, None)
    scaled = stored(desired)
    scaled["spec"]["replicas"] = 5
    assert not unchanged(desired, scaled), "a hand edit of a field we set is drift"
    old_render = stored(desired)
    old_render["metadata"]["annotations"][STAMP] = "an older hash"
    assert not unchanged(desired, old_render), "a renderer change re-applies, removing fields"


def test_secrets_compare_their_stored_base64_data() -> None:
    desired = stamp(rendered("Secret", "clicks-clickhouse-credentials"))
    kept = stored(desired)
    assert unchanged(desired, kept)
    kept["data"]["admin-password"] = base64.b64encode(b"changed by hand").decode()
    assert not unchanged(desired, kept)


def test_the_stamp_follows_the_desired_state() -> None:
    manifests = build_platform(platform(), design(), RenderConfig(), SECRETS)
    first = stamp(manifests[0])["metadata"]["annotations"][STAMP]
    assert stamp(manifests[0])["metadata"]["annotations"][STAMP] == first
    changed = copy.deepcopy(manifests[0])
    changed["metadata"]["labels"]["extra"] = "1"
    assert stamp(changed)["metadata"]["annotations"][STAMP] != first
    assert STAMP not in manifests[0]["metadata"].get("annotations", {}), "stamping copies"


def rendered_statefulset() -> dict[str, Any]:
    manifests = build_platform(platform(), design(), RenderConfig(), SECRETS)
    return stamp(next(m for m in manifests if m["kind"] == "StatefulSet"))


def test_drift_is_someone_elses_change_of_what_this_operator_applied() -> None:
    desired = rendered_statefulset()
    ours = desired["metadata"]["annotations"][STAMP]
    scaled = stored(desired)
    scaled["spec"]["replicas"] = 5
    wanted = desired["spec"]["replicas"]
    assert drift_of(desired, scaled, ours) == [f"spec.replicas: 5, where Duet sets {wanted}"]
    assert drift_of(desired, None, ours) == ["deleted"]
    # Nothing differs in spec (a label, a stamp): nothing to tell.
    assert drift_of(desired, stored(desired), ours) is None


def test_the_operators_own_changes_are_not_drift() -> None:
    desired = rendered_statefulset()
    older = stored(desired)
    older["spec"]["replicas"] = 1
    older["metadata"]["annotations"][STAMP] = "an-older-rendering"
    # The stored object carries a stamp this process did not apply last: a new design or a
    # new operator version's rendering, applied now.
    assert drift_of(desired, older, desired["metadata"]["annotations"][STAMP]) is None
    # Before this process applied anything, it cannot tell whose a difference is.
    scaled = stored(desired)
    scaled["spec"]["replicas"] = 5
    assert drift_of(desired, scaled, None) is None


def test_drift_in_lists_is_named_by_its_path_without_values() -> None:
    desired = rendered_statefulset()
    edited = stored(desired)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
    (line,) = drift_of(desired, edited, desired["metadata"]["annotations"][STAMP]) or []
    assert line == "spec.template.spec.containers: '(changed)', where Duet sets '(as rendered)'"
