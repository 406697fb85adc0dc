"""The local control plane's pure parts: stages, node manifests, readiness, versions."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support.cluster import TESTENV
from tests.support.failures import INJECT_LABEL, Failure
from tests.support.testenv_module import load

testenv = load()


def stages() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((TESTENV / "stages").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_every_stage_is_a_named_kwok_stage_for_pods() -> None:
    docs = stages()
    names = [d["metadata"]["name"] for d in docs]
    assert len(names) == len(set(names)), "kwok keys stages by name"
    for doc in docs:
        assert doc["apiVersion"] == "kwok.x-k8s.io/v1alpha1"
        assert doc["kind"] == "Stage"
        assert doc["spec"]["resourceRef"] == {"apiGroup": "v1", "kind": "Pod"}
        assert doc["spec"]["next"].keys() & {"statusTemplate", "delete"}


def test_each_failure_kind_has_a_stage_selecting_its_label_value() -> None:
    label_key = f'.metadata.labels["{INJECT_LABEL}"]'
    selected: set[str] = set()
    for doc in stages():
        for expression in doc["spec"]["selector"]["matchExpressions"]:
            if expression["key"] == label_key and expression["operator"] == "In":
                selected.update(expression["values"])
    assert selected == {f.value for f in Failure}


def test_recovery_stage_only_touches_pods_without_the_label() -> None:
    (recover,) = [d for d in stages() if d["metadata"]["name"] == "duet-recover"]
    expressions = recover["spec"]["selector"]["matchExpressions"]
    assert {"key": f'.metadata.labels["{INJECT_LABEL}"]', "operator": "DoesNotExist"} in expressions


def test_crash_stages_report_what_the_kubelet_reports() -> None:
    by_name = {d["metadata"]["name"]: d for d in stages()}
    for name, reason, code in [
        ("duet-inject-crashloop-first", "Error", 1),
        ("duet-inject-oomkilled-first", "OOMKilled", 137),
    ]:
        template = by_name[name]["spec"]["next"]["statusTemplate"]
        assert f"reason: {reason}\n" in template
        assert f"exitCode: {code}\n" in template
        assert "reason: CrashLoopBackOff" in template
        assert "add1 $restarts" in template


def test_stage_documents_include_stock_and_our_stages(tmp_path: Any) -> None:
    stock = tmp_path / "stock"
    for rel in testenv.STOCK_STAGES:
        (stock / rel).parent.mkdir(parents=True, exist_ok=True)
        name = rel.rsplit("/", 1)[-1].removesuffix(".yaml")
        (stock / rel).write_text(
            f"kind: Stage\nmetadata: {{name: {name}}}\nspec:\n  delay:\n"
            "    jitterDurationMilliseconds: 5000\n"
        )
    docs = list(yaml.safe_load_all(testenv.stage_documents(stock)))
    (options,) = [d for d in docs if d["kind"] == "KwokConfiguration"]
    assert options["options"]["podPlayStageParallelism"] > 4
    assert options["options"]["nodeLeaseParallelism"] > 0, "kwok exits on zero"
    docs = [d for d in docs if d["kind"] == "Stage"]
    names = [d["metadata"]["name"] for d in docs]
    assert len(names) == len(set(names)), "ours replace stock stages of the same name"
    assert "pod-ready" in names
    assert "duet-inject-crashloop-first" in names
    jitters = [d["spec"]["delay"]["jitterDurationMilliseconds"] for d in docs[:2]]
    assert jitters == [testenv.POD_JITTER_MS] * 2


def test_node_manifest_is_a_fake_node_that_kwok_manages() -> None:
    node = yaml.safe_load(testenv.node_manifest("kwok-node-1"))
    key, _, value = testenv.FAKE_NODE_ANNOTATION.partition("=")
    assert node["metadata"]["annotations"][key] == value
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "kwok-node-1"
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-1"
    assert "taints" not in node.get("spec", {})


@pytest.mark.parametrize(
    ("conditions", "taints", "expected"),
    [
        ([{"type": "Ready", "status": "True"}], [], True),
        ([{"type": "Ready", "status": "False"}], [], False),
        ([], [], False),
        (
            [{"type": "Ready", "status": "True"}],
            [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}],
            False,
        ),
        (
            [{"type": "Ready", "status": "True"}],
            [{"key": "dedicated", "effect": "NoSchedule"}],
            True,
        ),
    ],
)
def test_node_is_schedulable(
    conditions: list[dict[str, str]], taints: list[dict[str, str]], expected: bool
) -> None:
    node = {"status": {"conditions": conditions}, "spec": {"taints": taints}}
    assert testenv.node_is_schedulable(node) is expected


def test_versions_are_pinned_exactly() -> None:
    versions = testenv.read_versions()
    assert set(versions) == {
        "KUBERNETES_VERSION",
        "ETCD_VERSION",
        "KWOK_VERSION",
        "HELM_VERSION",
        "VERSITYGW_VERSION",
        "AWSCLI_VERSION",
    }
    for value in versions.values():
        # Go modules are pinned as vX.Y.Z, PyPI packages (the AWS CLI) as X.Y.Z.
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), value


@pytest.mark.parametrize("name", ["../etc", "a b", "x;y", ""])
def test_environment_names_are_checked(name: str) -> None:
    with pytest.raises(testenv.TestenvError):
        testenv.Env(name)
