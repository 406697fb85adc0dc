"""spec.backup, spec.restoreFrom and DataPlatformBackup: what the models accept and refuse,
and what reaches the CRDs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from duet_operator.crdgen import KINDS, build_crd
from duet_operator.models import DataPlatformBackup
from duet_operator.models.backup import BackupPhase, BackupSpec
from tests.support.platforms import platform, s3_target

S3 = s3_target(prefix="prod/eu")


def backup_spec(**fields: Any) -> BackupSpec:
    return BackupSpec.model_validate({"schedule": "0 2 * * *", "target": {"s3": S3}} | fields)


def test_a_platform_takes_a_backup_schedule_and_a_restore_source() -> None:
    dp = platform(
        backup={"schedule": "@daily", "retention": 14, "target": {"pvc": {"size": "500Gi"}}},
        restoreFrom={"backup": "clicks-nightly"},
    )
    assert dp.spec.backup is not None
    assert dp.spec.backup.retention == 14
    assert dp.spec.backup.target.pvc is not None
    assert dp.spec.restore_from is not None
    assert dp.spec.restore_from.backup == "clicks-nightly"
    assert platform().spec.backup is None


def test_s3_keys_default_to_conventional_names() -> None:
    target = backup_spec().target.s3
    assert target is not None
    assert target.secret_ref.access_key_id_key == "access-key-id"
    assert target.secret_ref.secret_access_key_key == "secret-access-key"
    assert target.region == "us-east-1"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"schedule": "0 25 * * *"}, "schedule"),
        ({"retention": 0}, "retention"),
        ({"target": {"s3": S3 | {"endpoint": "minio:9000"}}}, "endpoint"),
        ({"target": {"s3": S3 | {"bucket": "Bad_Bucket"}}}, "bucket"),
        ({"target": {"s3": S3 | {"prefix": "/abs"}}}, "prefix"),
        ({"target": {"s3": S3 | {"secretRef": {}}}}, "secretRef"),
    ],
)
def test_bad_backup_specs_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        backup_spec(**fields)


def schema_of(kind: str) -> dict[str, Any]:
    found = next(k for k in KINDS if k.kind == kind)
    return build_crd(found)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def rules(node: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


def test_the_crd_says_exactly_one_target_and_one_way_to_get_a_claim() -> None:
    spec = schema_of("DataPlatform")["properties"]["spec"]["properties"]
    target = spec["backup"]["properties"]["target"]
    assert "has(self.pvc) != has(self.s3)" in rules(target)
    assert "has(self.claimName) != has(self.size)" in rules(target["properties"]["pvc"])
    assert spec["backup"]["properties"]["schedule"]["pattern"].startswith("^(@(")
    assert spec["backup"]["properties"]["retention"]["minimum"] == 1
    assert spec["restoreFrom"]["required"] == ["backup"]


def test_data_platform_backup_crd() -> None:
    kind = next(k for k in KINDS if k.kind == "DataPlatformBackup")
    crd = build_crd(kind)
    assert crd["spec"]["names"]["shortNames"] == ["dpbackup"]
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Platform", "Phase", "Size", "Duration", "Location", "Age"]
    spec = schema_of("DataPlatformBackup")["properties"]["spec"]
    assert "self == oldSelf" in rules(spec)
    components = spec["properties"]["components"]
    assert components["x-kubernetes-list-type"] == "set"
    assert components["default"] == ["clickhouse", "postgres"]
    status = schema_of("DataPlatformBackup")["properties"]["status"]["properties"]
    assert set(status["phase"]["enum"]) == {p.value for p in BackupPhase}
    assert {"startedAt", "completedAt", "sizeBytes", "durationSeconds", "location"} <= set(status)


def test_a_backup_defaults_to_both_components_and_the_platforms_target() -> None:
    backup = DataPlatformBackup.model_validate(
        {"metadata": {"name": "b1", "namespace": "ns"}, "spec": {"platformRef": {"name": "dp"}}}
    )
    assert [c.value for c in backup.spec.components] == ["clickhouse", "postgres"]
    assert backup.spec.target is None
    assert backup.status.phase is None
