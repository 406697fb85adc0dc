"""`kubectl duet ...` through the real kubectl binary of the local control plane, with the
plugin found on PATH as kubectl finds any plugin.

The plugin is the `kubectl-duet` console script; here a two-line executable of the same
entry point stands in for it, so the tests need no install step.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess, free_port
from tests.support.testenv_module import load
from tests.support.wait import WaitTimeoutError, wait_until

pytestmark = pytest.mark.integration

READY = 90


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, plugin_dir: Path) -> None:
        self.binary = binary
        self.env = os.environ | {
            "KUBECONFIG": str(kubeconfig),
            "PATH": f"{plugin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    plugin_dir = tmp_path_factory.mktemp("plugins")
    plugin = plugin_dir / "kubectl-duet"
    plugin.write_text(
        f"#!{sys.executable}\nfrom duet_operator.kubectl_plugin import app\n\napp()\n"
    )
    plugin.chmod(0o755)
    return Kubectl(load().Binaries.build().kubectl, kubeconfig, plugin_dir)


def platform_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {"requirements": {"dataVolume": "100Gi"}},
    }


def remediation_body(name: str, platform: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Remediation",
        "metadata": {"name": name},
        "spec": {
            "platformRef": {"name": platform},
            "symptom": {"type": "CrashLoop", "object": f"pod/{platform}-clickhouse-0-0"},
            "diagnosis": "the server keeps restarting",
            "action": {
                "type": "restartPod",
                "parameters": {"target": f"pod/{platform}-clickhouse-0-0"},
            },
            "mode": "recommend",
        },
    }


def test_kubectl_finds_the_plugin(kubectl: Kubectl) -> None:
    listed = kubectl.run("plugin", "list")
    assert "kubectl-duet" in listed.stdout, listed.stderr
    helped = kubectl.run("duet", "--help")
    assert helped.returncode == 0, helped.stderr
    assert all(c in helped.stdout for c in ("status", "approve", "backup", "plan", "ask"))


def test_status_and_approve_of_a_real_platform(
    duet_operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str
) -> None:
    create_custom_object(custom, namespace, platform_body("web"))
    create_custom_object(custom, namespace, remediation_body("web-crash-1", "web"))

    def ready() -> subprocess.CompletedProcess[str] | None:
        shown = kubectl.run("duet", "status", "web", "-n", namespace)
        return shown if "Phase:       Ready" in shown.stdout else None

    shown = wait_until(ready, timeout=READY, what="kubectl duet status to show web Ready")
    assert shown.returncode == 0
    text = shown.stdout
    assert "Platform:    web" in text
    assert f"Namespace:   {namespace}" in text
    assert "shard(s) x" in text
    for condition in ("Planned", "Provisioned", "Ready"):
        assert f"\n  {condition} " in text
    assert f"http://web-clickhouse.{namespace}.svc.cluster.local:8123" in text
    assert "web-crash-1" in text

    as_json = kubectl.run("duet", "status", "web", "--namespace", namespace, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    found = json.loads(as_json.stdout)
    assert found["status"]["phase"] == "Ready"
    assert {c["type"] for c in found["status"]["conditions"]} >= {"Planned", "Ready"}
    assert [r["name"] for r in found["remediations"]] == ["web-crash-1"]

    missing = kubectl.run("duet", "status", "nope", "-n", namespace)
    assert missing.returncode == 2
    assert f"DataPlatform nope not found in namespace {namespace}" in missing.stderr

    approved = kubectl.run("duet", "approve", "web-crash-1", "-n", namespace)
    assert approved.returncode == 0, approved.stderr
    assert "remediation web-crash-1 approved" in approved.stdout
    spec = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "remediations", "web-crash-1"
    )["spec"]
    assert spec["approved"] is True

    backed = kubectl.run("duet", "backup", "web", "-n", namespace)
    assert backed.returncode == 0, backed.stderr
    made = backed.stdout.split()[1]
    backup = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatformbackups", made
    )
    assert backup["spec"]["platformRef"] == {"name": "web"}
    nothing = kubectl.run("duet", "backup", "nope", "-n", namespace)
    assert nothing.returncode == 2
    assert "DataPlatform nope not found" in nothing.stderr


def test_plan_runs_without_touching_the_cluster(kubectl: Kubectl) -> None:
    example = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "dataplatform.yaml"
    planned = kubectl.run("duet", "plan", "-f", str(example), "-o", "json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["clickhouse"]["shards"] >= 1


# -- ask ---------------------------------------------------------------------------------


def host_address() -> str | None:
    """An address of this machine that the API server may proxy to: it refuses loopback."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    for address in out.stdout.split():
        try:
            socket.inet_pton(socket.AF_INET, address)
        except OSError:
            continue
        if not address.startswith(("127.", "169.254.")):
            return address
    return None


@pytest.fixture
def query_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`duet query serve` over a small chDB database, on an address of this machine."""
    address = host_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address for the API server to reach")
    data = tmp_path / "chdb"
    data.mkdir()
    prepare = (
        "import clickhouse_connect, sys\n"
        "c = clickhouse_connect.get_client(interface='chdb', path=sys.argv[1])\n"
        "c.command('CREATE DATABASE shop')\n"
        "c.command('CREATE TABLE shop.orders (id UInt64, total Float64) "
        "ENGINE = MergeTree ORDER BY id')\n"
        "c.command('INSERT INTO shop.orders SELECT number, number * 2 FROM numbers(42)')\n"
        "c.close()\n"
    )
    subprocess.run([sys.executable, "-c", prepare, str(data)], check=True)
    port = free_port()
    log = (tmp_path / "query.log").open("wb")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "duet_operator.cli", "query", "serve"),
            *("--database", f"chdb://{data}?database=shop"),
            *("--host", address, "--port", str(port)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> bool:
            try:
                with socket.create_connection((address, port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(healthy, timeout=60, what="the query server to listen")
        yield address, port
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def test_ask_reaches_the_platforms_query_agent_through_the_api_server(
    core: Any,
    custom: Any,
    kubectl: Kubectl,
    make_namespace: Callable[[str], str],
    query_server: tuple[str, int],
) -> None:
    # No operator here: the agent's Service points at the server above, as the operator's
    # would point at the agent's pods.
    namespace = make_namespace("kplug")
    address, port = query_server
    create_custom_object(
        custom,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "QueryAgent",
            "metadata": {"name": "ask"},
            "spec": {"platformRef": {"name": "web"}},
        },
    )
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "ask-query"},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]},
        },
    )
    # The API server's service proxy takes an address from the Service's Endpoints, and only
    # one whose target Pod has that IP: a Pod bound to a node outside the cluster (nothing
    # runs it) with its status saying where the server listens.
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "ask-query-0"},
            "spec": {
                "nodeName": "outside-the-cluster",
                "containers": [{"name": "q", "image": "-"}],
            },
        },
    )
    core.patch_namespaced_pod_status(
        "ask-query-0", namespace, {"status": {"podIP": address, "podIPs": [{"ip": address}]}}
    )
    core.create_namespaced_endpoints(
        namespace,
        {
            "metadata": {"name": "ask-query"},
            "subsets": [
                {
                    "addresses": [
                        {
                            "ip": address,
                            "targetRef": {
                                "kind": "Pod", "name": "ask-query-0", "namespace": namespace,
                            },
                        }
                    ],
                    "ports": [{"name": "http", "port": port}],
                }
            ],
        },
    )  # fmt: skip

    said: list[str] = []

    def answered() -> subprocess.CompletedProcess[str] | None:
        result = kubectl.run("duet", "ask", "web", "How many orders?", "-n", namespace, "--json")
        said[:] = [result.stderr]
        return result if result.returncode == 0 else None

    try:
        result = wait_until(answered, timeout=30, what="kubectl duet ask to be answered")
    except WaitTimeoutError as e:
        raise WaitTimeoutError(f"{e}; it said: {said}") from None
    answer = json.loads(result.stdout)
    assert "orders" in answer.get("sql", ""), answer
    assert answer["rows"] == [[42]]

    text = kubectl.run("duet", "ask", "ask", "How many orders?", "-n", namespace)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("-- ask: ")
    assert text.stdout.rstrip().endswith("42")

    refused = kubectl.run("duet", "ask", "web", "drop table shop.orders", "-n", namespace)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "QueryAgent ask:" in refused.stderr

    nobody = kubectl.run("duet", "ask", "other", "How many orders?", "-n", namespace)
    assert nobody.returncode == 2
    assert "no QueryAgent named other" in nobody.stderr
