"""Which context the operator and the commands talk to (kube/client.py load_config), and a
server that does not answer."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import yaml

from duet_operator.kube.client import (
    ConfigError,
    Kube,
    KubeError,
    KubeUnreachableError,
    load_config,
)


def kubeconfig(path: Path, server: str, namespace: str | None = None) -> Path:
    context: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "ctx", "context": context}],
                "current-context": "ctx",
            }
        )
    )
    return path


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A service account directory as a pod has it."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "namespace").write_text("duet-system")
    (account / "ca.crt").write_text("")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return str(account)


@pytest.fixture(autouse=True)
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_a_kubeconfig_names_the_server_and_the_namespace(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "https://k8s.example:6443", "analytics")
    config = load_config(str(path), service_account=str(tmp_path / "none"))
    assert config.cluster.server == "https://k8s.example:6443"
    assert config.namespace == "analytics"


def test_kubeconfig_list_reads_its_first_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = kubeconfig(tmp_path / "second", "https://second:6443")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{second}")
    config = load_config(service_account=str(tmp_path / "none"))
    assert config.cluster.server == "https://second:6443"
    assert config.namespace == "default"


def test_in_a_pod_the_operator_takes_its_service_account_and_commands_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pod: str
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", "https://laptop:6443")))
    operator = load_config(service_account=pod)
    assert operator.cluster.server == "https://10.0.0.1:443"
    assert operator.namespace == "duet-system"
    assert load_config(prefer_in_cluster=False, service_account=pod).cluster.server == (
        "https://laptop:6443"
    )


def test_a_command_in_a_pod_without_kubeconfig_takes_the_service_account(pod: str) -> None:
    config = load_config(prefer_in_cluster=False, service_account=pod)
    assert config.cluster.server == "https://10.0.0.1:443"


def test_a_pod_without_the_service_variables_says_so(
    pod: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError, match="the service account: no 'KUBERNETES_SERVICE_HOST'"):
        load_config(service_account=pod)


def test_no_configuration_at_all_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(service_account=str(tmp_path / "none"))
    assert "~/.kube/config" in str(missing.value)
    assert "not in a pod" in str(missing.value)


def test_a_kubeconfig_without_a_current_context_is_refused(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "https://k8s.example:6443")
    path.write_text(path.read_text().replace("current-context: ctx", ""))
    with pytest.raises(ConfigError, match="No current context"):
        load_config(str(path), service_account=str(tmp_path / "none"))


def test_a_kubeconfig_missing_a_section_names_it(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": []}))
    with pytest.raises(ConfigError, match=f"{path}: no 'contexts'"):
        load_config(str(path), service_account=str(tmp_path / "none"))


def test_no_answer_is_not_a_refusal() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def scenario() -> None:
        async with Kube.for_server(f"http://127.0.0.1:{port}") as kube:
            with pytest.raises(KubeUnreachableError) as unreachable:
                await kube.get("v1", "ConfigMap", "c", "default")
        assert not isinstance(unreachable.value, KubeError)
        assert "ConnectError" in str(unreachable.value)

    asyncio.run(scenario())
