"""The healer in the operator, against the real API server, controllers and kwok nodes, with
failures injected the way the kubelet reports them: auto mode restarts a crash-looping
ClickHouse pod and verifies it; recommend mode waits for `duet approve`; observe mode only
records; the rate limit holds when several pods fail; a restarted operator makes no duplicate
and acts on an approval given while it was down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object
from tests.support.failures import INJECT_LABEL, Failure, inject_failure
from tests.support.llm_servers import BackgroundLLMServer, Scripted, openai_tool_call
from tests.support.operator import OperatorProcess, serving
from tests.support.wait import WaitTimeoutError, wait_until

pytestmark = pytest.mark.integration

READY = 120
HEALED = 90
PLATFORM_LABEL = "duet.aidatalabs.ai/platform"


@pytest.fixture
def namespace(make_namespace: Callable[[str], str]) -> str:
    """A namespace that only this module's operator watches (`heal-*`): the session's operator
    serves `t-*`, and two operators on one platform would race."""
    return make_namespace("heal")


@pytest.fixture(scope="module")
def healer(
    kubeconfig: Path,
    crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator looking at each platform every 2 s (the default is 15)."""
    log = tmp_path_factory.mktemp("healer") / "operator.log"
    with serving(
        OperatorProcess(
            kubeconfig,
            log,
            resync_seconds=60,
            namespaces="heal-*",
            env={"DUET_HEAL_INTERVAL_SECONDS": "2"},
        )
    ) as process:
        yield process


def platform_body(name: str, mode: str, replicas: int = 1, **autonomy: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {
            "requirements": {"dataVolume": "100Gi"},
            "clickhouse": {"shards": 1, "replicas": replicas},
            "postgres": {"enabled": False},
            "autonomy": {"mode": mode} | autonomy,
        },
    }


def ready_platform(custom: Any, namespace: str, body: dict[str, Any]) -> None:
    create_custom_object(custom, namespace, body)
    name = body["metadata"]["name"]

    def ready() -> bool:
        found = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "dataplatforms", name
        )
        return bool(found.get("status", {}).get("phase") == "Ready")

    wait_until(ready, timeout=READY, what=f"platform {name} to be Ready")


def remediations(custom: Any, namespace: str) -> list[dict[str, Any]]:
    found = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations")
    items: list[dict[str, Any]] = found["items"]
    return items


def wait_remediation(
    custom: Any, namespace: str, pod: str, phase: str, timeout: float = HEALED
) -> dict[str, Any]:
    return wait_remediation_of(custom, namespace, f"pod/{pod}", phase, timeout)


def wait_remediation_of(
    custom: Any, namespace: str, obj: str, phase: str, timeout: float = HEALED
) -> dict[str, Any]:
    seen: list[Any] = []

    def probe() -> dict[str, Any] | None:
        found = remediations(custom, namespace)
        seen[:] = [(r["metadata"]["name"], r.get("status")) for r in found]
        return next(
            (
                r
                for r in found
                if r["spec"]["symptom"]["object"] == obj
                and (r.get("status") or {}).get("phase") == phase
            ),
            None,
        )

    try:
        return wait_until(probe, timeout=timeout, what=f"a Remediation of {obj} to be {phase}")
    except WaitTimeoutError as e:
        raise WaitTimeoutError(f"{e}; remediations: {seen}") from None


def pod_uid(core: Any, namespace: str, name: str) -> str:
    uid: str = core.read_namespaced_pod(name, namespace).metadata.uid
    return uid


def restarts(core: Any, namespace: str, name: str) -> int:
    statuses = core.read_namespaced_pod(name, namespace).status.container_statuses or []
    return sum(s.restart_count for s in statuses)


def wait_more_restarts(core: Any, namespace: str, pod: str, more: int = 2) -> None:
    """Time enough for several healer passes (every 2 s), measured by the failure itself:
    the injected crash loop restarts the container every 5 s."""
    start = restarts(core, namespace, pod)
    wait_until(
        lambda: restarts(core, namespace, pod) >= start + more,
        timeout=60,
        what=f"{pod} to crash {more} more times",
    )


def healthy_replacement(core: Any, namespace: str, pod: str, old_uid: str) -> Any:
    def probe() -> Any:
        found = core.read_namespaced_pod(pod, namespace)
        ready = any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])
        return found if found.metadata.uid != old_uid and ready else None

    return wait_until(probe, timeout=HEALED, what=f"a new, Ready {pod}", ignore=(Exception,))


def platform_events(core: Any, namespace: str, name: str) -> list[tuple[str, str]]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=DataPlatform,involvedObject.name={name}"
    )
    return [(e.type, e.reason) for e in found.items]


def platform_messages(core: Any, namespace: str, name: str) -> list[tuple[str, str]]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=DataPlatform,involvedObject.name={name}"
    )
    return [(e.reason, e.message) for e in found.items]


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def duet(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duet_operator.cli", *args],
        env=os.environ | {"KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# -- tests -------------------------------------------------------------------------------------


def test_auto_mode_restarts_a_crash_looping_pod_and_verifies_it(
    healer: OperatorProcess, custom: Any, core: Any, namespace: str
) -> None:
    ready_platform(custom, namespace, platform_body("auto", "auto"))
    pod = "auto-clickhouse-0-0"
    old_uid = pod_uid(core, namespace, pod)
    inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)

    verified = wait_remediation(custom, namespace, pod, "Verified")
    new = healthy_replacement(core, namespace, pod, old_uid)
    assert INJECT_LABEL not in (new.metadata.labels or {})
    spec, status = verified["spec"], verified["status"]
    assert (spec["action"]["type"], spec["mode"], spec["symptom"]["type"]) == (
        "restartPod",
        "auto",
        "CrashLoop",
    )
    assert spec["action"]["parameters"]["uid"] == old_uid
    assert spec["platformRef"] == {"name": "auto"}
    assert status["appliedAt"] <= status["verifiedAt"]
    assert "Ready" in status["message"]
    meta = verified["metadata"]
    assert meta["labels"][PLATFORM_LABEL] == "auto"
    assert meta["ownerReferences"][0]["kind"] == "DataPlatform"
    assert len(remediations(custom, namespace)) == 1
    # A pass posts its Events after its status writes: the last one may trail the status.
    wanted = {"SymptomDetected", "RemediationApproved", "RemediationApplied", "RemediationVerified"}
    wait_until(
        lambda: wanted <= {reason for _, reason in platform_events(core, namespace, "auto")},
        timeout=30,
        what=f"the platform's Events {sorted(wanted)}",
    )
    text = healer.metrics()
    labels = {"action": "restartPod", "mode": "auto"}
    assert metric(text, "duet_remediations_total", result="applied", **labels) >= 1
    assert metric(text, "duet_remediations_total", result="verified", **labels) >= 1
    assert metric(text, "duet_mttr_seconds_count") >= 1
    # The symptom is gone, and so is its gauge.
    wait_until(
        lambda: metric(healer.metrics(), "duet_symptoms_active", platform=f"{namespace}/auto") == 0,
        timeout=30,
        what="the active-symptom gauge to clear",
    )


def test_recommend_mode_waits_for_duet_approve(
    healer: OperatorProcess, kubeconfig: Path, custom: Any, core: Any, namespace: str
) -> None:
    ready_platform(custom, namespace, platform_body("rec", "recommend"))
    pod = "rec-clickhouse-0-0"
    old_uid = pod_uid(core, namespace, pod)
    inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)

    pending = wait_remediation(custom, namespace, pod, "Pending")
    assert "recommend mode" in pending["status"]["message"]
    wait_more_restarts(core, namespace, pod)
    assert pod_uid(core, namespace, pod) == old_uid, "nothing is done before approval"
    assert len(remediations(custom, namespace)) == 1

    missing = duet(kubeconfig, "approve", "no-such-remediation", "-n", namespace)
    assert missing.returncode == 2
    assert "not found" in missing.stderr

    name = pending["metadata"]["name"]
    approved = duet(kubeconfig, "approve", name, "-n", namespace)
    assert approved.returncode == 0, approved.stderr
    assert name in approved.stdout

    verified = wait_remediation(custom, namespace, pod, "Verified")
    assert verified["spec"]["approved"] is True
    healthy_replacement(core, namespace, pod, old_uid)
    assert len(remediations(custom, namespace)) == 1
    # Past approving: said so, and not an error of usage.
    again = duet(kubeconfig, "approve", name, "-n", namespace)
    assert again.returncode == 1
    assert "Verified" in again.stderr


def test_observe_mode_records_and_never_acts(
    healer: OperatorProcess, custom: Any, core: Any, namespace: str
) -> None:
    ready_platform(custom, namespace, platform_body("watch", "observe"))
    pod = "watch-clickhouse-0-0"
    old_uid = pod_uid(core, namespace, pod)
    inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)

    recorded = wait_remediation(custom, namespace, pod, "Rejected")
    assert recorded["status"]["message"] == "observe mode: recorded only"
    assert recorded["spec"]["mode"] == "observe"
    assert "appliedAt" not in recorded["status"]
    wait_more_restarts(core, namespace, pod)
    assert pod_uid(core, namespace, pod) == old_uid
    assert len(remediations(custom, namespace)) == 1, "recorded once, not once per pass"


def test_the_rate_limit_holds_when_several_pods_fail(
    healer: OperatorProcess, custom: Any, core: Any, namespace: str
) -> None:
    ready_platform(
        custom, namespace, platform_body("storm", "auto", replicas=3, maxActionsPerHour=1)
    )
    pods = [f"storm-clickhouse-0-{i}" for i in range(3)]
    uids = {p: pod_uid(core, namespace, p) for p in pods}
    for pod in pods:
        inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)

    def one_verified() -> dict[str, Any] | None:
        done = [
            r
            for r in remediations(custom, namespace)
            if r.get("status", {}).get("phase") == "Verified"
        ]
        return done[0] if done else None

    first = wait_until(one_verified, timeout=HEALED, what="one remediation to be Verified")
    restarted = first["spec"]["action"]["parameters"]["pod"]
    others = [p for p in pods if p != restarted]
    for pod in others:
        wait_more_restarts(core, namespace, pod)
    assert len(remediations(custom, namespace)) == 1
    for pod in others:
        assert pod_uid(core, namespace, pod) == uids[pod], f"{pod} was restarted past the limit"


def test_a_restarted_operator_makes_no_duplicate_and_acts_on_an_approval_given_meanwhile(
    healer: OperatorProcess, kubeconfig: Path, custom: Any, core: Any, namespace: str
) -> None:
    ready_platform(custom, namespace, platform_body("again", "recommend"))
    pod = "again-clickhouse-0-0"
    old_uid = pod_uid(core, namespace, pod)
    inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)
    name = wait_remediation(custom, namespace, pod, "Pending")["metadata"]["name"]
    assert re.fullmatch(r"again-[0-9a-f]{10}-1", name)

    healer.kill()
    try:
        assert duet(kubeconfig, "approve", name, "-n", namespace).returncode == 0
    finally:
        healer.start()

    verified = wait_remediation(custom, namespace, pod, "Verified")
    assert verified["metadata"]["name"] == name
    healthy_replacement(core, namespace, pod, old_uid)
    assert [r["metadata"]["name"] for r in remediations(custom, namespace)] == [name]


def statefulset_memory(apps: Any, namespace: str, name: str) -> str:
    sts = apps.read_namespaced_stateful_set(name, namespace)
    container = next(c for c in sts.spec.template.spec.containers if c.name == "clickhouse")
    memory: str = container.resources.limits["memory"]
    return memory


def test_auto_mode_raises_the_memory_of_an_oom_killed_replica_in_the_design(
    healer: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    body = platform_body("oom", "auto", actions=["restartPod", "raiseMemory"])
    ready_platform(custom, namespace, body)
    pod, sts = "oom-clickhouse-0-0", "oom-clickhouse-0"
    before = statefulset_memory(apps, namespace, sts)
    inject_failure(core, (namespace, pod), Failure.OOM_KILLED)

    applied = wait_remediation(custom, namespace, pod, "Applied")
    action = applied["spec"]["action"]
    assert action["type"] == "raiseMemory"
    assert action["parameters"]["statefulset"] == sts
    wanted = action["parameters"]["to"]
    # Healing was True while it was carried out (by now it may be over): its Event says so.
    name = applied["metadata"]["name"]
    wait_until(
        lambda: any(
            r == "Remediating" and name in m for r, m in platform_messages(core, namespace, "oom")
        ),
        timeout=30,
        what=f"a Remediating Event naming {name}",
    )

    verified = wait_remediation(custom, namespace, pod, "Verified", timeout=2 * HEALED)
    assert "runs clickhouse with" in verified["status"]["message"]
    # The raise is the design's: the StatefulSet, status.design and status.adjustments agree,
    # and the drift timer's reconciles keep it.
    assert statefulset_memory(apps, namespace, sts) == wanted != before
    status = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "dataplatforms", "oom")[
        "status"
    ]
    assert status["design"]["clickhouse"]["resources"]["memory"] == wanted
    (adjustment,) = status["adjustments"]
    assert adjustment["field"] == "clickhouse.resources.memory"
    assert (adjustment["value"], adjustment["remediation"]) == (
        wanted,
        verified["metadata"]["name"],
    )
    assert any(line.startswith("healer: ") for line in status["design"]["rationale"])

    def healed() -> bool:
        found = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "dataplatforms", "oom"
        )["status"]
        condition = next(c for c in found["conditions"] if c["type"] == "Healing")
        return bool(condition["status"] == "False" and found["phase"] == "Ready")

    wait_until(healed, timeout=30, what="Healing False and the platform Ready")
    wait_until(
        lambda: (
            {"RemediationApplied", "RemediationVerified"}
            <= {reason for _, reason in platform_events(core, namespace, "oom")}
        ),
        timeout=30,
        what="the platform's RemediationApplied and RemediationVerified Events",
    )


def test_a_replica_a_restart_did_not_cure_is_replaced_on_approval(
    healer: OperatorProcess, kubeconfig: Path, custom: Any, core: Any, namespace: str
) -> None:
    ready_platform(custom, namespace, platform_body("rep", "auto", replicas=2))
    pod = "rep-clickhouse-0-0"
    claim = f"data-{pod}"
    old_claim_uid = core.read_namespaced_persistent_volume_claim(claim, namespace).metadata.uid
    inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)
    restart = wait_remediation(custom, namespace, pod, "Applied")
    assert restart["spec"]["action"]["type"] == "restartPod"
    # The new pod fails the same way: the restart did not cure it.
    replacement = healthy_replacement(
        core, namespace, pod, restart["spec"]["action"]["parameters"]["uid"]
    )
    inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)

    def pending_replace() -> dict[str, Any] | None:
        return next(
            (
                r
                for r in remediations(custom, namespace)
                if r["spec"]["action"]["type"] == "replaceReplica"
                and (r.get("status") or {}).get("phase") == "Pending"
            ),
            None,
        )

    pending = wait_until(pending_replace, timeout=2 * HEALED, what="a pending replaceReplica")
    assert "approval" in pending["status"]["message"]
    assert pending["spec"]["action"]["parameters"]["claim"] == claim
    assert core.read_namespaced_persistent_volume_claim(claim, namespace).metadata.uid == (
        old_claim_uid
    ), "nothing that deletes data happens before approval"

    approved = duet(kubeconfig, "approve", pending["metadata"]["name"], "-n", namespace)
    assert approved.returncode == 0, approved.stderr

    def rebuilt() -> dict[str, Any] | None:
        found = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "remediations", pending["metadata"]["name"]
        )
        return found if (found.get("status") or {}).get("phase") == "Verified" else None

    verified = wait_until(rebuilt, timeout=2 * HEALED, what="the replaced replica verified")
    assert "rebuilt on a new volume" in verified["status"]["message"]
    new_claim = core.read_namespaced_persistent_volume_claim(claim, namespace)
    assert new_claim.metadata.uid != old_claim_uid
    assert new_claim.metadata.deletion_timestamp is None
    assert pod_uid(core, namespace, pod) != replacement.metadata.uid


def test_with_a_model_the_model_chooses_among_the_playbooks_actions(
    healer: OperatorProcess, custom: Any, core: Any, namespace: str
) -> None:
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "llm"}, "stringData": {"api-key": "sk-test"}}
    )
    # No reply scripted yet: the planner's call fails and the built-in design is used.
    with BackgroundLLMServer([]) as llm:
        body = platform_body("modeled", "auto")
        body["spec"]["planner"] = {
            "provider": "openai",
            "model": "gpt-test",
            "baseURL": llm.openai_url,
            "secretRef": {"name": "llm", "key": "api-key"},
        }
        ready_platform(custom, namespace, body)
        planner_calls = len(llm.received)
        choice = {"action": "restartPod", "reason": "It exits at start; a restart is cheap."}
        llm.add(Scripted(openai_tool_call("choose_action", choice, prompt_tokens=900)))
        pod = "modeled-clickhouse-0-0"
        inject_failure(core, (namespace, pod), Failure.CRASH_LOOP)

        verified = wait_remediation(custom, namespace, pod, "Verified")
        asked = llm.received[planner_calls:]
    assert verified["spec"]["action"]["type"] == "restartPod"
    assert "chosen by the openai model gpt-test" in verified["spec"]["diagnosis"]
    assert "It exits at start" in verified["spec"]["diagnosis"]
    # Asked once, with the playbook's choices as its only tool, and the evidence.
    (request,) = asked
    (tool,) = request.body["tools"]
    assert tool["function"]["name"] == "choose_action"
    assert pod in str(request.body["messages"])
    text = healer.metrics()
    assert metric(text, "duet_llm_requests_total", agent="healer", outcome="ok") == 1
    assert metric(text, "duet_llm_tokens_total", agent="healer", direction="input") >= 900


def test_drift_put_back_by_the_reconcile_is_recorded_as_a_reapply(
    healer: OperatorProcess, custom: Any, apps: Any, namespace: str
) -> None:
    ready_platform(custom, namespace, platform_body("drifty", "auto"))
    statefulset = "drifty-clickhouse-0"
    apps.patch_namespaced_stateful_set(statefulset, namespace, {"spec": {"replicas": 3}})

    verified = wait_remediation_of(custom, namespace, f"statefulset/{statefulset}", "Verified")
    spec = verified["spec"]
    assert (spec["symptom"]["type"], spec["action"]["type"]) == ("Drift", "reapply")
    assert "spec.replicas: 3, where Duet sets 1" in str(spec["symptom"])
    assert apps.read_namespaced_stateful_set(statefulset, namespace).spec.replicas == 1
