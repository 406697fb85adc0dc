"""The Helm chart against the real API server: every object it makes is admitted, and the
RBAC it grants is enough, and no more than the operator needs, proven by running the
operator as the chart's ServiceAccount (a token from the TokenRequest API) and watching a
DataPlatform become Ready, cluster-wide and with watchNamespaces.

The chart's pod cannot run a real image here (kwok nodes only pretend), so the operator
runs as a local process with that ServiceAccount's identity and the Deployment's own
DUET_* environment, which is what the pod would have.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException

from duet_operator.models import GROUP, VERSION
from tests.support.cluster import REPO
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess
from tests.support.testenv_module import load
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

CHART = REPO / "charts" / "duet"
MONITORING_CRDS = CHART / "tests" / "monitoring-crds"
READY = 120
PLATFORM_LABEL = "duet.aidatalabs.ai/platform"
# What a refused request looks like in the operator's log: the API server's 403, the
# client's Forbidden, kopf's "Not enough permissions" fallbacks.
REFUSALS = ("403", "forbidden", "not enough permissions")


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path
    kubeconfig: Path

    def helm_run(self, *args: str) -> str:
        return self._run(self.helm, *args)

    def kubectl_run(self, *args: str) -> str:
        return self._run(self.kubectl, *args)

    def _run(self, binary: Path, *args: str) -> str:
        result = subprocess.run(
            [str(binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"{binary.name} {' '.join(args)} failed: {result.stderr}")
        return result.stdout


@pytest.fixture(scope="module")
def tools(kubeconfig: Path) -> Tools:
    binaries = load().Binaries.build()
    return Tools(binaries.helm, binaries.kubectl, kubeconfig)


@contextlib.contextmanager
def release(tools: Tools, namespace: str, *values: str) -> Iterator[str]:
    """`helm install` of the chart (a release name of its own: its ClusterRole is
    cluster-wide), uninstalled afterwards."""
    name = f"duet-{uuid.uuid4().hex[:6]}"
    tools.helm_run("install", name, str(CHART), "--namespace", namespace, *values)
    try:
        yield name
    finally:
        tools.helm_run("uninstall", name, "--namespace", namespace, "--wait")


def service_account_kubeconfig(tools: Tools, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig for the admin's cluster that authenticates as the ServiceAccount."""
    token = tools.kubectl_run(
        "create", "token", account, "--namespace", namespace, "--duration", "1h"
    ).strip()
    admin = yaml.safe_load(tools.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    ca = cluster["cluster"].get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["cluster"]["certificate-authority"] = str(tools.kubeconfig.parent / ca)
    user = f"system:serviceaccount:{namespace}:{account}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": user}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


def deployment_env(tools: Tools, namespace: str, name: str) -> dict[str, str]:
    """The DUET_* settings the chart gives the operator's pod."""
    deployment = json.loads(
        tools.kubectl_run("get", "deployment", name, "-n", namespace, "-o", "json")
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        e["name"]: e["value"]
        for e in container["env"]
        if e["name"].startswith("DUET_") and "value" in e
    }


def operator_as(tools: Tools, namespace: str, name: str, tmp_path: Path) -> OperatorProcess:
    kubeconfig = service_account_kubeconfig(tools, namespace, name, tmp_path / "sa.kubeconfig")
    # namespaces=None: what to watch comes from the chart's DUET_NAMESPACES, as in the pod.
    return OperatorProcess(
        kubeconfig, tmp_path / "operator.log", namespaces=None,
        env=deployment_env(tools, namespace, name),
    ).start()  # fmt: skip


def platform(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {"requirements": {"dataVolume": "50Gi"}, "deletionPolicy": "Delete"},
    }


def get_platform(custom: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "dataplatforms", name
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return found


def wait_ready(custom: Any, namespace: str, name: str, operator: OperatorProcess) -> None:
    def ready() -> bool:
        found = get_platform(custom, namespace, name) or {}
        phase: str | None = found.get("status", {}).get("phase")
        return phase == "Ready"

    try:
        wait_until(ready, timeout=READY, what=f"{namespace}/{name} to be Ready")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- operator log ---\n{operator.log_tail(60)}") from None


def delete_and_wait(custom: Any, namespace: str, name: str) -> None:
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "dataplatforms", name)
    wait_until(
        lambda: get_platform(custom, namespace, name) is None,
        timeout=60,
        what=f"{namespace}/{name} to be deleted",
    )


# Refused for another reason than RBAC: a namespace of another test being deleted.
NOT_RBAC = ("because it is being terminated",)


def refusals(operator: OperatorProcess) -> list[str]:
    """Log lines that report a request the RBAC refused. The timestamp is left out of the
    match (its milliseconds can read 403)."""
    found = []
    for line in operator.log_path.read_text(errors="replace").splitlines():
        message = line.split(" ", 2)[-1].lower()
        if any(r in message for r in REFUSALS) and not any(n in message for n in NOT_RBAC):
            found.append(line)
    return found


def test_every_object_of_every_toggle_is_admitted(tools: Tools, make_namespace: Any) -> None:
    # The Prometheus Operator's own CRDs (vendored), so its kinds are checked by their schema.
    tools.kubectl_run("apply", "--server-side", "-f", str(MONITORING_CRDS))

    def established() -> bool:
        crds = json.loads(tools.kubectl_run("get", "-f", str(MONITORING_CRDS), "-o", "json"))
        return all(
            any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
            # Right after the apply a CRD's status may carry `conditions: null`.
            for conditions in (
                (i.get("status") or {}).get("conditions") or [] for i in crds["items"]
            )
        )

    wait_until(established, timeout=30, what="the Prometheus Operator CRDs to be established")
    namespace = make_namespace("chart")
    watched = make_namespace("chart-watched")
    toggles = [
        "--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboards.enabled=true",
        "--set", f"replicaCount=2,watchNamespaces={{{watched}}}",
        "--set", "llm.openai.secretRef.name=llm,llm.openai.secretRef.key=openai",
        "--set-json", 'planner.prices={"cpuCoreMonthUSD": 30}',
    ]  # fmt: skip
    with release(tools, namespace, *toggles) as name:
        status = json.loads(tools.helm_run("status", name, "-n", namespace, "-o", "json"))
        assert status["info"]["status"] == "deployed"
        selector = f"app.kubernetes.io/instance={name}"
        kinds_made = "deployment,service,serviceaccount,servicemonitor,prometheusrule,configmap"
        made = json.loads(
            tools.kubectl_run("get", kinds_made, "-n", namespace, "-l", selector, "-o", "json")
        )
        kinds = sorted(item["kind"] for item in made["items"])
        # Two ServiceMonitors (the operator, the query agents), one dashboard ConfigMap each.
        dashboards = len(list((CHART / "dashboards").glob("*.json")))
        assert kinds == sorted(
            ["Deployment", "Service", "ServiceAccount", "ServiceMonitor", "ServiceMonitor",
             "PrometheusRule", *["ConfigMap"] * dashboards]
        )  # fmt: skip
        in_watched = json.loads(
            tools.kubectl_run(
                "get", "role,rolebinding,kopfpeering", "-n", watched, "-l", selector, "-o", "json"
            )
        )
        assert sorted(i["kind"] for i in in_watched["items"]) == [
            "KopfPeering", "Role", "RoleBinding",
        ]  # fmt: skip


def test_the_operator_needs_no_more_than_the_chart_grants(
    tools: Tools, make_namespace: Any, custom: Any, core: Any, tmp_path: Path
) -> None:
    namespace = make_namespace("chart")
    apps_namespace = make_namespace("rbac")
    with release(tools, namespace) as name:
        operator = operator_as(tools, namespace, name, tmp_path)
        try:
            create_custom_object(custom, apps_namespace, platform("small"))
            wait_ready(custom, apps_namespace, "small", operator)
            # Deletion under deletionPolicy Delete: the finalizer removes the platform's
            # Secrets and claims (delete), then lets the platform go (patch).
            delete_and_wait(custom, apps_namespace, "small")
            secrets = core.list_namespaced_secret(
                apps_namespace, label_selector=f"{PLATFORM_LABEL}=small"
            )
            assert secrets.items == []
        finally:
            operator.stop()
        assert refusals(operator) == [], "\n".join(refusals(operator))


def test_watch_namespaces_serve_those_and_ignore_the_rest(
    tools: Tools, make_namespace: Any, custom: Any, core: Any, apps: Any, tmp_path: Path
) -> None:
    namespace = make_namespace("chart")
    served = make_namespace("rbac-served")
    other = make_namespace("rbac-other")
    with release(tools, namespace, "--set", f"watchNamespaces={{{served}}}") as name:
        operator = operator_as(tools, namespace, name, tmp_path)
        try:
            create_custom_object(custom, other, platform("elsewhere"))
            create_custom_object(custom, served, platform("here"))
            wait_ready(custom, served, "here", operator)
            # Applied first, and still untouched: no finalizer, no status, no children.
            ignored = get_platform(custom, other, "elsewhere")
            assert ignored is not None
            assert "status" not in ignored
            assert not ignored["metadata"].get("finalizers")
            assert apps.list_namespaced_stateful_set(other).items == []
            # Its own finalizer lets the served one go; the other has none to wait for.
            delete_and_wait(custom, served, "here")
            delete_and_wait(custom, other, "elsewhere")
        finally:
            operator.stop()
        assert refusals(operator) == [], "\n".join(refusals(operator))
