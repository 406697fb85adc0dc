"""Restore at provisioning, without a cluster: the condition Restored from what was read
(restore_step), the restore Job and PostgreSQL's restore step as rendered, and how Ready and
the rendered objects follow the condition."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from duet_agents.backup.wal import recovery_script, recovery_target
from duet_operator.models import DataPlatform, DataPlatformBackup
from duet_operator.models.backup import PostgresRecovery
from duet_operator.observe import Readiness, expected_statefulsets, readiness
from duet_operator.planning import PlanOutcome
from duet_operator.reconcile import next_status, restored_render, transition_events
from duet_operator.render.backup import BackupConfig
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import Names
from duet_operator.render.platform import build_platform
from duet_operator.render.postgres import restoring, with_restore
from duet_operator.restore import RestoreReading, RestoreState, restore_step, wanted
from duet_operator.status import ConditionType, Reason, find, set_condition
from tests.support.platforms import SECRETS, design, platform, s3_target

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = Names("clicks", "analytics")
CONFIG = RenderConfig()
BACKUPS = BackupConfig()
STAMP = "20250301T020000Z"
PVC = {"pvc": {"claimName": "shared-backups"}}
S3 = {"s3": s3_target()}
LOCATION = f"pvc://shared-backups/shop/{STAMP}"
S3_LOCATION = f"s3://duet-backups/prod/shop/{STAMP}"
DESIGN = design()


def restoring_platform(
    target: dict[str, Any] | None = PVC, recovery: str | None = None, **status: Any
) -> DataPlatform:
    spec: dict[str, Any] = {"restoreFrom": {"backup": "nightly"}}
    if recovery is not None:
        spec["restoreFrom"]["postgresRecovery"] = recovery
    if target is not None:
        spec["backup"] = {"schedule": "@daily", "target": target}
    p = platform(**spec)
    return p.model_copy(update={"status": p.status.model_copy(update=status)})


def record(
    phase: str | None = "Completed", location: str | None = LOCATION, **spec: Any
) -> DataPlatformBackup:
    status = {k: v for k, v in {"phase": phase, "location": location}.items() if v}
    return DataPlatformBackup.model_validate(
        {
            "metadata": {"name": "nightly", "namespace": "analytics"},
            "spec": {"platformRef": {"name": "shop"}} | spec,
            "status": status,
        }
    )


def sts(name: str, replicas: int, ready: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": "r1",
            "updateRevision": "r1",
        },
    }


CLICKHOUSE_READY = [
    sts("clicks-clickhouse-0", 2, 2),
    sts("clicks-clickhouse-1", 2, 2),
    sts("clicks-keeper", 3, 3),
]


def pg_pod(*, ready: bool, restore: dict[str, Any] | None = None) -> dict[str, Any]:
    statuses = [{"name": "restore"} | (restore or {"state": {"terminated": {"exitCode": 0}}})]
    return {
        "metadata": {"name": "clicks-postgres-0"},
        "spec": {"initContainers": [{"name": "restore"}]},
        "status": {
            "phase": "Running" if ready else "Pending",
            "initContainerStatuses": statuses,
            "conditions": [{"type": "Ready", "status": str(ready)}],
        },
    }


def job(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "clicks-restore", "uid": "u1"},
        "status": {"conditions": list(conditions)},
    }


COMPLETE = {"type": "Complete", "status": "True"}
FAILED = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}


def step(
    p: DataPlatform, reading: RestoreReading, statefulsets: list[dict[str, Any]] | None = None
) -> RestoreState:
    if statefulsets is None:
        statefulsets = []
    return restore_step(p, DESIGN, statefulsets, reading, config=CONFIG, backup_config=BACKUPS)


# -- the condition ---------------------------------------------------------------------------


def test_a_missing_backup_starts_no_database_and_is_looked_for_again() -> None:
    state = step(restoring_platform(), RestoreReading(None))
    assert (state.restored, state.reason) == (False, Reason.BACKUP_NOT_FOUND)
    assert "nightly not found in analytics" in state.message
    assert state.withhold
    assert state.recheck
    assert state.manifests == []
    assert state.postgres is None


@pytest.mark.parametrize(("phase", "recheck"), [("Running", True), (None, True), ("Failed", False)])
def test_a_backup_not_completed_is_waited_for_unless_it_failed(
    phase: str | None, recheck: bool
) -> None:
    state = step(restoring_platform(), RestoreReading(record(phase)))
    assert (state.restored, state.reason) == (False, Reason.BACKUP_NOT_COMPLETED)
    assert state.withhold
    assert state.recheck is recheck
    if phase == "Failed":
        assert "make a new platform" in state.message


@pytest.mark.parametrize(
    ("target", "location", "says"),
    [
        (None, LOCATION, "set it to the target the backup was written to"),
        ({"pvc": {"claimName": "other"}}, LOCATION, "that is the claim other"),
        (PVC, S3_LOCATION, "that is the claim shared-backups"),
        (S3, "s3://elsewhere/prod/shop/" + STAMP, "that is s3://duet-backups/prod/"),
        (S3, LOCATION, "that is s3://duet-backups/prod/"),
    ],
)
def test_a_backup_the_servers_cannot_read_is_not_found_saying_where_it_is(
    target: dict[str, Any] | None, location: str, says: str
) -> None:
    state = step(restoring_platform(target), RestoreReading(record(location=location)))
    assert (state.restored, state.reason) == (False, Reason.BACKUP_NOT_FOUND)
    assert location in state.message
    assert says in state.message
    assert state.withhold
    assert not state.recheck


def test_a_backup_on_another_endpoint_is_not_read_from_this_one() -> None:
    elsewhere = {"s3": S3["s3"] | {"endpoint": "https://s3.eu-west-1.amazonaws.com"}}
    state = step(
        restoring_platform(S3), RestoreReading(record(location=S3_LOCATION, target=elsewhere))
    )
    assert state.reason == Reason.BACKUP_NOT_FOUND


def test_first_postgres_restores_and_clickhouse_waits_for_its_servers() -> None:
    state = step(restoring_platform(), RestoreReading(record()))
    assert (state.restored, state.reason) == (False, Reason.RESTORING)
    assert not state.withhold
    assert state.manifests == []
    assert state.postgres is not None
    assert (state.postgres.claim, state.postgres.directory) == (
        "shared-backups",
        f"shop/{STAMP}/postgres",
    )
    assert "ClickHouse: waiting for its servers to be Ready" in state.message


def test_clickhouse_ready_without_a_job_gets_the_restore_job() -> None:
    state = step(restoring_platform(), RestoreReading(record()), CLICKHOUSE_READY)
    (manifest,) = state.manifests
    assert manifest["kind"] == "Job"
    assert manifest["metadata"]["name"] == "clicks-restore"
    assert manifest["metadata"]["ownerReferences"][0]["kind"] == "DataPlatform"
    labels = manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "backup"
    assert labels["app.kubernetes.io/component"] == "restore"
    assert "ttlSecondsAfterFinished" not in manifest["spec"]
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LOCATION"] == f"/backups/shop/{STAMP}/clickhouse"
    assert env["RESTORE_SQL"].startswith("RESTORE ALL EXCEPT DATABASES")
    assert 'ON CLUSTER "default" FROM File({location:String})' in env["RESTORE_SQL"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_s3_restores_from_the_named_collection_with_keys_by_reference() -> None:
    state = step(
        restoring_platform(S3), RestoreReading(record(location=S3_LOCATION)), CLICKHOUSE_READY
    )
    (manifest,) = state.manifests
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LOCATION"] == f"shop/{STAMP}/clickhouse"
    assert 'FROM S3("duet_backups", {location:String})' in env["RESTORE_SQL"]
    assert state.postgres is not None
    assert state.postgres.directory == f"duet-backups/prod/shop/{STAMP}/postgres"


def test_shards_without_keeper_restore_each_from_its_own_directory() -> None:
    unkept = design(shards=2, replicas=1, keeper=0)
    ready = [sts("clicks-clickhouse-0", 1, 1), sts("clicks-clickhouse-1", 1, 1)]
    state = restore_step(
        restoring_platform(), unkept, ready, RestoreReading(record()),
        config=CONFIG, backup_config=BACKUPS,
    )  # fmt: skip
    pod = state.manifests[0]["spec"]["template"]["spec"]
    steps = [*pod["initContainers"], *pod["containers"]]
    assert [s["name"] for s in steps] == ["clickhouse-shard-0", "clickhouse-shard-1"]
    locations = [next(e["value"] for e in s["env"] if e["name"] == "LOCATION") for s in steps]
    assert locations == [f"/backups/shop/{STAMP}/clickhouse/shard-{i}" for i in range(2)]
    assert all("ON CLUSTER" not in str(s["env"]) for s in steps)


def test_a_failed_restore_job_is_restore_failed_with_its_words() -> None:
    failed_pod = {
        "metadata": {"creationTimestamp": "a"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "clickhouse",
                    "state": {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "message": "Code: 598. DB::Exception: Backup not found",
                        }
                    },
                }
            ],
        },
    }
    reading = RestoreReading(record(), job(FAILED), [failed_pod], pg_pod(ready=True))
    state = step(restoring_platform(), reading, CLICKHOUSE_READY)
    assert (state.restored, state.reason) == (False, Reason.RESTORE_FAILED)
    assert "clicks-restore failed: BackoffLimitExceeded" in state.message
    assert "step clickhouse exited with code 1 (Error): Code: 598" in state.message
    assert "delete the Job to try again" in state.message
    assert state.manifests == []


def test_a_failing_postgres_restore_step_is_restore_failed_with_its_words() -> None:
    crashing = {
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {
            "terminated": {"exitCode": 1, "reason": "Error", "message": "no base.tar.gz in /b"}
        },
    }
    reading = RestoreReading(record(), None, (), pg_pod(ready=False, restore=crashing))
    state = step(restoring_platform(), reading)
    assert state.reason == Reason.RESTORE_FAILED
    assert "PostgreSQL's restore failed: step restore exited with code 1" in state.message
    assert "no base.tar.gz" in state.message
    assert state.postgres is not None, "the step stays while it has not succeeded"


def test_both_parts_done_is_restored_and_the_postgres_step_goes() -> None:
    reading = RestoreReading(record(), job(COMPLETE), (), pg_pod(ready=True))
    state = step(restoring_platform(), reading, CLICKHOUSE_READY)
    assert (state.restored, state.reason) == (True, Reason.RESTORE_DONE)
    assert state.message == f"restored clickhouse, postgres from backup nightly ({LOCATION})"
    assert state.postgres is None
    assert state.manifests == []


def test_a_ready_pod_that_never_ran_the_step_is_not_restored() -> None:
    older = pg_pod(ready=True)
    older["spec"] = {}
    state = step(restoring_platform(), RestoreReading(record(), job(COMPLETE), (), older))
    assert state.reason == Reason.RESTORING
    assert "PostgreSQL" in state.message


def test_only_the_parts_the_backup_has_are_restored() -> None:
    reading = RestoreReading(record(components=["clickhouse"]), job(COMPLETE), ())
    state = step(restoring_platform(), reading, CLICKHOUSE_READY)
    assert (state.restored, state.postgres) == (True, None)
    assert "restored clickhouse from" in state.message


def test_restored_true_is_kept_and_restore_from_then_ignored() -> None:
    p = restoring_platform()
    assert wanted(p)
    done = set_condition([], ConditionType.RESTORED, True, Reason.RESTORE_DONE, "restored",
                         generation=1, now=T0)  # fmt: skip
    assert not wanted(restoring_platform(conditions=done))
    assert not wanted(platform())


# -- what is rendered ------------------------------------------------------------------------


def rendered(p: DataPlatform) -> list[dict[str, Any]]:
    return build_platform(p, DESIGN, CONFIG, SECRETS)


def postgres_sts(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        m
        for m in manifests
        if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "clicks-postgres"
    )


def test_without_a_restore_the_render_is_the_same_objects() -> None:
    p = restoring_platform()
    objects = rendered(p)
    assert restored_render(objects, p, DESIGN, CONFIG, None) is objects
    assert with_restore(objects, p, DESIGN, CONFIG, None) is objects


def test_postgres_restores_from_the_claim_read_only_with_passwords_by_reference() -> None:
    p = restoring_platform()
    state = step(p, RestoreReading(record()))
    before = rendered(p)
    after = restored_render(before, p, DESIGN, CONFIG, state)
    sts_ = postgres_sts(after)
    assert restoring(sts_)
    assert not restoring(postgres_sts(before))
    pod = sts_["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == "postgres:17"
    # The claim is the target's, which the WAL archiver mounts already: the step mounts that
    # volume read-only, rather than the pod naming the claim twice.
    assert {"name": "backups", "mountPath": "/backups", "readOnly": True} in init["volumeMounts"]
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "backups", "persistentVolumeClaim": {"claimName": "shared-backups"}}]
    script = init["command"][-1]
    assert f"/backups/shop/{STAMP}/postgres" in script
    assert "postgres --single" in script
    # The WAL archive of the backup's platform, beside its runs, replayed to its end.
    assert "wal=/backups/shop/wal/" in script
    assert "restore_command=" in script
    assert script.index("restore_command=") < script.index("postgres --single")
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in init["env"] if "valueFrom" in e}
    assert secrets["POSTGRES_PASSWORD"] == {
        "name": "clicks-postgres-credentials",
        "key": "superuser-password",
    }
    assert SECRETS.postgres_superuser_password not in json.dumps(sts_)
    # Everything else as rendered without the restore.
    others = [m for m in after if m is not sts_]
    assert others == [m for m in before if m is not postgres_sts(before)]


def test_postgres_from_s3_downloads_first_with_keys_from_the_targets_secret() -> None:
    p = restoring_platform(S3)
    state = step(p, RestoreReading(record(location=S3_LOCATION)))
    pod = postgres_sts(restored_render(rendered(p), p, DESIGN, CONFIG, state))["spec"]["template"][
        "spec"
    ]
    download, restore = pod["initContainers"]
    assert download["name"] == "restore-download"
    assert download["image"] == BACKUPS.uploader_image
    env = {e["name"]: e for e in download["env"]}
    assert env["SOURCE"]["value"] == f"duet-backups/prod/shop/{STAMP}/postgres"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-keys",
        "key": "access-key-id",
    }
    assert "s3-keys" not in " ".join(download["command"])
    assert "/var/lib/postgresql/data/duet-restore" in restore["command"][-1]
    # The download fetches the platform's WAL archive too, and the restore replays it.
    assert env["WAL_SOURCE"]["value"] == "duet-backups/prod/shop/wal"
    assert '"s3://$WAL_SOURCE/"' in download["command"][-1]
    assert "wal=/var/lib/postgresql/data/duet-restore/wal/" in restore["command"][-1]
    assert not any(v["name"] == "restore-source" for v in pod["volumes"])


@pytest.mark.parametrize("target", [PVC, S3], ids=["pvc", "s3"])
def test_postgres_recovery_backup_stops_at_the_backups_end(target: dict[str, Any]) -> None:
    p = restoring_platform(target, "Backup")
    location = LOCATION if target is PVC else S3_LOCATION
    state = step(p, RestoreReading(record(location=location)))
    pod = postgres_sts(restored_render(rendered(p), p, DESIGN, CONFIG, state))["spec"]["template"][
        "spec"
    ]
    *download, restore = pod["initContainers"]
    script = restore["command"][-1]
    # Unpacked and opened as it was backed up: no archive read, nothing fetched for one.
    assert "restore_command=" not in script
    assert "wal=" not in script
    assert "postgres --single" in script
    for fetch in download:
        assert "WAL_SOURCE" not in {e["name"] for e in fetch["env"]}


def test_postgres_recovery_is_latest_unless_asked_and_names_its_values() -> None:
    asked = restoring_platform().spec.restore_from
    assert asked is not None
    assert asked.postgres_recovery is PostgresRecovery.LATEST
    with pytest.raises(ValidationError, match="postgresRecovery"):
        restoring_platform(recovery="Yesterday")


def test_an_unreadable_backup_withholds_every_statefulset() -> None:
    p = restoring_platform()
    state = step(p, RestoreReading(None))
    after = restored_render(rendered(p), p, DESIGN, CONFIG, state)
    assert after
    assert not [m for m in after if m["kind"] == "StatefulSet"]


def test_a_done_restore_asks_for_the_step_to_go_and_a_due_one_for_it_to_come() -> None:
    p = restoring_platform()
    with_step = postgres_sts(
        restored_render(rendered(p), p, DESIGN, CONFIG, step(p, RestoreReading(record())))
    )
    done = RestoreState(True, Reason.RESTORE_DONE, "restored")
    due = step(p, RestoreReading(record()))
    assert done.rerender([with_step])
    assert not done.rerender([postgres_sts(rendered(p))])
    assert not due.rerender([with_step])
    assert due.rerender([postgres_sts(rendered(p))])


# -- Ready ------------------------------------------------------------------------------------


def planned() -> PlanOutcome:
    return PlanOutcome(DESIGN, "h", True, Reason.DESIGNED, "", changed=False)


def all_ready() -> Readiness:
    expected = expected_statefulsets(NAMES, DESIGN)
    return readiness(expected, [sts(n, w, w) for n, w in expected.items()])


def test_ready_waits_while_restored_is_false_and_follows_it_once_true() -> None:
    p = restoring_platform()
    busy = RestoreState(False, Reason.RESTORING, "restoring from backup nightly")
    waiting = next_status(p, planned(), all_ready(), None, NAMES, now=T0, restore=busy)
    ready = find(waiting.conditions, ConditionType.READY)
    restored = find(waiting.conditions, ConditionType.RESTORED)
    assert ready is not None
    assert restored is not None
    assert (ready.status, ready.reason) == ("False", Reason.NOT_RESTORED)
    assert (restored.status, restored.reason) == ("False", Reason.RESTORING)
    events = {(e.type, e.reason) for e in transition_events(p.status, waiting)}
    assert {("Normal", "Restoring"), ("Normal", "NotRestored")} <= events

    p = p.model_copy(update={"status": waiting})
    done = RestoreState(True, Reason.RESTORE_DONE, "restored")
    finished = next_status(p, planned(), all_ready(), None, NAMES, now=T0, restore=done)
    assert finished.phase == "Ready"

    # Restored True is kept when nothing is looked at any more.
    p = p.model_copy(update={"status": finished})
    later = next_status(p, planned(), all_ready(), None, NAMES, now=T0)
    kept = find(later.conditions, ConditionType.RESTORED)
    assert kept is not None
    assert (kept.status, kept.reason) == ("True", Reason.RESTORE_DONE)
    assert later.phase == "Ready"


def test_a_missing_backup_is_a_warning() -> None:
    p = restoring_platform()
    missing = RestoreState(False, Reason.BACKUP_NOT_FOUND, "not found", withhold=True)
    status = next_status(p, planned(), all_ready(), None, NAMES, now=T0, restore=missing)
    assert ("Warning", "BackupNotFound") in [
        (e.type, e.reason) for e in transition_events(p.status, status)
    ]
    assert status.phase != "Ready"


@pytest.mark.parametrize("target", [PVC, S3], ids=["pvc", "s3"])
def test_postgres_recovery_time_replays_the_archive_up_to_the_target(
    target: dict[str, Any],
) -> None:
    p = platform(
        backup={"schedule": "@daily", "target": target},
        restoreFrom={
            "backup": "nightly",
            "postgresRecovery": "Time",
            "recoveryTargetTime": "2025-03-01T16:30:00.25+02:00",
        },
    )
    location = LOCATION if target is PVC else S3_LOCATION
    state = step(p, RestoreReading(record(location=location)))
    pod = postgres_sts(restored_render(rendered(p), p, DESIGN, CONFIG, state))["spec"]["template"][
        "spec"
    ]
    *download, restore = pod["initContainers"]
    script = restore["command"][-1]
    # In UTC, as PostgreSQL reads it; the archive fetched and read as for Latest.
    assert "target=2025-03-01T14:30:00.250000+00:00" in script
    assert 'recovery_target_time="$target"' in script
    assert "recovery_target_inclusive=on" in script
    assert "recovery_target_action=promote" in script
    assert "restore_command=" in script
    for fetch in download:
        assert "WAL_SOURCE" in {e["name"] for e in fetch["env"]}


def test_postgres_recovery_time_needs_a_target_time_and_only_it_takes_one() -> None:
    asked = platform(
        restoreFrom={
            "backup": "nightly",
            "postgresRecovery": "Time",
            "recoveryTargetTime": "2025-03-01T14:30:00Z",
        }
    ).spec.restore_from
    assert asked is not None
    assert asked.postgres_recovery is PostgresRecovery.TIME
    with pytest.raises(ValidationError, match="recoveryTargetTime is required"):
        platform(restoreFrom={"backup": "nightly", "postgresRecovery": "Time"})
    with pytest.raises(ValidationError, match="recoveryTargetTime is required"):
        platform(restoreFrom={"backup": "nightly", "recoveryTargetTime": "2025-03-01T14:30:00Z"})
    # RFC 3339: a time without its offset is refused, rather than read in some zone.
    with pytest.raises(ValidationError, match="timezone"):
        platform(
            restoreFrom={
                "backup": "nightly",
                "postgresRecovery": "Time",
                "recoveryTargetTime": "2025-03-01T14:30:00",
            }
        )


def test_a_recovery_target_is_spliced_only_as_utc_digits() -> None:
    moment = datetime(2025, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert recovery_target(moment) == "2025-03-01T14:00:00.000000+00:00"
    with pytest.raises(ValueError, match="offset"):
        recovery_target(datetime(2025, 3, 1, 9, 0))
    script = recovery_script("/a", "/b", "/c", target_time=moment)
    assert "-ge 1740837600 ]" in script
