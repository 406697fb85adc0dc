"""Fixtures shared by every test. Cluster fixtures start nothing until a test asks for them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from tests.support.cluster import cluster_under_test
from tests.support.crds import install_crds
from tests.support.operator import OperatorProcess, log_sections, serving


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for title, text in log_sections():
            report.sections.append((title, text))
    return report


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """A kubeconfig for the cluster under test (see tests/support/cluster.py)."""
    with cluster_under_test() as path:
        yield path


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Any:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def core(api_client: Any) -> Any:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client: Any) -> Any:
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="session")
def dynamic(api_client: Any) -> DynamicClient:
    return DynamicClient(api_client)


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    """A namespace of the test's own, removed afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {"duet.aidatalabs.ai/test": "true"}}}
    )
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture
def make_namespace(core: Any) -> Iterator[Callable[[str], str]]:
    """Namespaces of the test's own, `<prefix>-<random>`, removed afterwards. A prefix other
    than `t` keeps them from the session's operator, which serves `t-*`: for tests that run
    an operator of their own, which would otherwise race it."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": name}})
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)


@pytest.fixture(scope="session")
def crds(api_client: Any) -> list[str]:
    """Duet's CRDs installed in the cluster under test."""
    return install_crds(api_client)


@pytest.fixture(scope="session")
def custom(api_client: Any, crds: list[str]) -> Any:
    return client.CustomObjectsApi(api_client)


@pytest.fixture(scope="session")
def duet_operator(
    kubeconfig: Path,
    crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """`duet operator run`, watching the tests' namespaces, for the whole session."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with serving(OperatorProcess(kubeconfig, log)) as process:
        yield process
