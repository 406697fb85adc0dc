"""The chart's platform memory: SQLite on a volume of its own by default, a PostgreSQL URL
with a password only from a Secret, and the operator reading what the chart gives it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from duet_operator.settings import OperatorSettings
from tests.unit.test_chart import CHART, KUBE_VERSION, run_helm

SQLITE_URL = "sqlite:////var/lib/duet/memory.db"


def pod(*settings: str) -> dict[str, Any]:
    args = [a for s in settings for a in ("--set", s)]
    result = run_helm("template", "duet", str(CHART), "--kube-version", KUBE_VERSION,
                      "--show-only", "templates/deployment.yaml", *args)  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec: dict[str, Any] = yaml.safe_load(result.stdout)["spec"]["template"]["spec"]
    return spec


def env(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = spec["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def memory_volume(spec: dict[str, Any]) -> dict[str, Any] | None:
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    if "memory" not in mounts:
        assert "memory" not in volumes
        return None
    assert mounts["memory"] == "/var/lib/duet"
    volume: dict[str, Any] = volumes["memory"]
    return volume


def test_by_default_the_memory_is_sqlite_on_a_volume_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = pod()
    assert env(spec)["DUET_MEMORY__URL"] == SQLITE_URL
    assert "DUET_MEMORY__EMBEDDINGS" not in env(spec)  # the setting's default: on
    assert memory_volume(spec) == {"name": "memory", "emptyDir": {"sizeLimit": "1Gi"}}
    # The pod's fsGroup makes the volume the operator's to write (its root is read-only).
    assert spec["securityContext"]["fsGroup"] == 10001
    monkeypatch.setenv("DUET_MEMORY__URL", SQLITE_URL)
    settings = OperatorSettings()
    assert settings.memory.enabled
    assert settings.memory.url == SecretStr(SQLITE_URL)
    assert settings.memory.embeddings


def test_the_description_model_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = pod("memory.embeddings=false")
    assert env(spec)["DUET_MEMORY__EMBEDDINGS"] == "false"
    monkeypatch.setenv("DUET_MEMORY__EMBEDDINGS", "false")
    settings = OperatorSettings()
    assert settings.memory.enabled
    assert not settings.memory.embeddings


def test_a_claim_keeps_the_memory_across_pods() -> None:
    volume = memory_volume(pod("memory.persistence.existingClaim=duet-memory"))
    assert volume == {"name": "memory", "persistentVolumeClaim": {"claimName": "duet-memory"}}


def test_a_postgresql_url_with_a_password_comes_from_a_secret_only() -> None:
    secret = pod("memory.urlSecretRef.name=duet-memory,memory.urlSecretRef.key=url")
    assert env(secret)["DUET_MEMORY__URL"] == {
        "secretKeyRef": {"name": "duet-memory", "key": "url"}
    }
    assert memory_volume(secret) is None
    plain = pod("memory.url=postgresql://duet@db.example:5432/duet?sslmode=require")
    assert (
        env(plain)["DUET_MEMORY__URL"] == "postgresql://duet@db.example:5432/duet?sslmode=require"
    )
    assert memory_volume(plain) is None


def test_memory_off_is_said_to_the_operator_and_mounts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = pod("memory.enabled=false")
    assert env(spec)["DUET_MEMORY__ENABLED"] == "false"
    assert "DUET_MEMORY__URL" not in env(spec)
    assert memory_volume(spec) is None
    monkeypatch.setenv("DUET_MEMORY__ENABLED", "false")
    assert not OperatorSettings().memory.enabled


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("memory.url=postgresql://duet:hunter2@db/duet", "/memory/url"),
        ("memory.url=postgresql://db/duet?password=hunter2", "/memory/url"),
        ("memory.url=mysql://db/duet", "/memory/url"),
        ("memory.urlSecretRef.name=only-a-name", "/memory/urlSecretRef"),
        ("memory.enabled=yes", "/memory/enabled"),
        ("memory.embeddings=maybe", "/memory/embeddings"),
        ("memory.persistence.existingClaim=Not_A_Claim", "/memory/persistence/existingClaim"),
        ("memory.size=1Gi", "additional properties 'size'"),
    ],
)
def test_the_schema_refuses_bad_memory_values(setting: str, field: str) -> None:
    result = run_helm("template", "duet", str(CHART), "--kube-version", KUBE_VERSION,
                      "--set", setting)  # fmt: skip
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr
