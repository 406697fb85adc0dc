"""The operator's watches of its children are filtered on the API server."""

from __future__ import annotations

import kopf
from kopf._cogs.structs.references import Resource

from duet_agents.planner import capacity
from duet_operator import credentials
from duet_operator.main import CHILD_RESOURCES, build_registry, configure_kopf
from duet_operator.models import GROUP, DataPlatform
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import MANAGED_BY, MANAGER
from duet_operator.render.platform import build_platform
from duet_operator.settings import OperatorSettings


def test_every_child_kind_a_handler_watches_is_selected_on_the_server() -> None:
    registry = build_registry(OperatorSettings(), None)
    # kopf has no public listing of a registry's watched resources; this test is the guard
    # that a handler added for a new kind of child is given a selector too.
    watched = {
        (h.selector.group, h.selector.version, h.selector.any_name)
        for h in registry._watching.get_all_handlers()
        if h.selector is not None and h.selector.group != GROUP
    }
    assert watched == set(CHILD_RESOURCES)
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    for group, version, plural in CHILD_RESOURCES:
        resource = Resource(group, version, plural, namespaced=True)
        selectors = list(settings.watching.label_selectors.collect(resource))
        assert selectors == [f"{MANAGED_BY}={MANAGER}"], plural
    # Duet's own resources are all watched, whatever their labels.
    platforms = Resource(GROUP, "v1alpha1", "dataplatforms", namespaced=True)
    assert list(settings.watching.label_selectors.collect(platforms)) == []


def test_every_object_of_a_platform_and_its_pod_templates_carry_the_selected_label() -> None:
    platform = DataPlatform.model_validate(
        {
            "apiVersion": "duet.aidatalabs.ai/v1alpha1",
            "kind": "DataPlatform",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "requirements": {"dataVolume": "50Gi", "availability": "high"},
                "backup": {"schedule": "0 2 * * *", "target": {"pvc": {"size": "10Gi"}}},
            },
        }
    )
    design = capacity.plan(platform.spec.plan_request())
    manifests = build_platform(platform, design, RenderConfig(), credentials.fill())
    templates = [m["spec"]["template"] for m in manifests if "template" in m.get("spec", {})]
    jobs = [m["spec"]["jobTemplate"] for m in manifests if "jobTemplate" in m.get("spec", {})]
    assert templates
    assert jobs
    for meta in [m["metadata"] for m in manifests + templates + jobs] + [
        j["spec"]["template"]["metadata"] for j in jobs
    ]:
        assert meta["labels"][MANAGED_BY] == MANAGER
