"""Backups run by the real operator on the local control plane: a DataPlatformBackup's Job is
made, admitted and run by a kwok node, and its status follows it to Completed or Failed;
spec.backup makes the CronJob and the claim, a run of the CronJob is recorded as a
DataPlatformBackup, retention deletes the oldest (its data first, by a cleanup Job; a failed
cleanup keeps the record), and removing spec.backup removes the CronJob.

kwok runs a Job's pod as far as the API is concerned (its stock `pod-complete` stage marks a
Running pod of a Job Succeeded), but it cannot write a container's termination message, which
is how a backup step reports what it wrote. So the test plays the kubelet for the pods of
backup Jobs: it holds kwok's `pod-complete` back on each (its delay annotation, set while the
pod's init steps still run), then writes the pod's end itself, messages included, as the
kubelet would once the containers exited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from duet_agents.backup.layout import stamp
from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess
from tests.support.platforms import s3_target
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

READY = 90
RUN = 60
# kwok's pod-complete stage takes its delay from these annotations (Go durations). Both: kwok
# takes the jitter as the delay's upper bound, and its default (1 s) would cut an hour to it.
HOLD_COMPLETE = {
    "pod-complete.stage.kwok.x-k8s.io/delay": "1h",
    "pod-complete.stage.kwok.x-k8s.io/jitter-delay": "1h",
}
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
S3 = s3_target(prefix=None)
# One step's end: exit code and termination message.
Ending = tuple[int, str]


@pytest.fixture
def batch(api_client: Any) -> Any:
    return client.BatchV1Api(api_client)


def dp(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {"requirements": {"dataVolume": "100Gi"}} | spec,
    }


def get(custom: Any, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return found


def wait_ready(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        found = get(custom, namespace, "dataplatforms", name)
        return found if found and found.get("status", {}).get("phase") == "Ready" else None

    return wait_until(ready, timeout=READY, what=f"{name} to be Ready")


def wait_backup(custom: Any, namespace: str, name: str, phase: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        found = get(custom, namespace, "dataplatformbackups", name) or {}
        seen.update(found.get("status") or {})
        return found if seen.get("phase") == phase else None

    return wait_until(reached, timeout=RUN, what=f"backup {name} to be {phase} (seen {seen})")


def wait_job(batch: Any, namespace: str, name: str) -> Any:
    def found() -> Any:
        try:
            return batch.read_namespaced_job(name, namespace)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise

    return wait_until(found, timeout=RUN, what=f"Job {name}")


def container_status(name: str, image: str, ending: Ending | None) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    code, message = ending or (0, "")
    terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
    if message:
        terminated["message"] = message
    return {
        "name": name,
        "image": image,
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"terminated": terminated | {"startedAt": now, "finishedAt": now}},
    }


def play_kubelet(
    core: Any, batch: Any, namespace: str, job: Any, endings: dict[str, Ending]
) -> Callable[[], bool]:
    """A probe for wait_until: holds each new pod of `job` back from kwok's pod-complete, and
    ends each Running one as `endings` says (by container; a step not named exits 0)."""
    held: set[str] = set()
    ended: set[str] = set()

    def step() -> bool:
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"{JOB_UID_LABEL}={job.metadata.uid}"
        ).items
        for pod in pods:
            name = pod.metadata.name
            if name not in held:
                core.patch_namespaced_pod(
                    name, namespace, {"metadata": {"annotations": HOLD_COMPLETE}}
                )
                held.add(name)
            if name in ended or pod.status.phase != "Running":
                continue
            plan = endings
            failed = any(code != 0 for code, _ in plan.values())
            statuses = {
                kind: [container_status(c.name, c.image, plan.get(c.name)) for c in containers]
                for kind, containers in (
                    ("initContainerStatuses", pod.spec.init_containers or []),
                    ("containerStatuses", pod.spec.containers),
                )
            }
            body = {"status": {"phase": "Failed" if failed else "Succeeded"} | statuses}
            core.patch_namespaced_pod_status(name, namespace, body)
            ended.add(name)
        # Done when the Job has ended.
        found = batch.read_namespaced_job(job.metadata.name, namespace)
        conditions = found.status.conditions or []
        return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)

    return step


def report(component: str, location: str, size: int) -> str:
    return json.dumps({"component": component, "location": location, "bytes": size})


def events_of(core: Any, namespace: str, kind: str, name: str) -> list[tuple[str, str]]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"
    )
    return [(e.type, e.reason) for e in found.items]


def test_an_on_demand_backup_runs_to_completed_with_its_size_and_location(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, dp("shop"))
    wait_ready(custom, namespace, "shop")
    backup = create_custom_object(
        custom,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DataPlatformBackup",
            "metadata": {"name": "before-migration"},
            "spec": {"platformRef": {"name": "shop"}, "target": {"s3": S3}},
        },
    )
    run = stamp(datetime.fromisoformat(backup["metadata"]["creationTimestamp"]))
    job = wait_job(batch, namespace, "before-migration-backup")
    assert job.metadata.owner_references[0].kind == "DataPlatformBackup"
    assert job.metadata.labels["duet.aidatalabs.ai/backup"] == "before-migration"
    endings = {
        "clickhouse": (0, report("clickhouse", f"shop/{run}/clickhouse", 4096)),
        "postgres": (0, report("postgres", f"/work/shop/{run}/postgres", 1000)),
        "upload": (0, report("postgres", f"s3://duet-backups/shop/{run}/postgres", 1000)),
    }
    wait_until(
        play_kubelet(core, batch, namespace, job, endings),
        timeout=RUN,
        what="the Job to end",
    )

    done = wait_backup(custom, namespace, "before-migration", "Completed")
    status = done["status"]
    assert status["sizeBytes"] == 4096 + 1000
    assert status["location"] == f"s3://duet-backups/shop/{run}"
    assert status["durationSeconds"] >= 0
    assert status["startedAt"] <= status["completedAt"]
    reasons = [r for _, r in events_of(core, namespace, "DataPlatformBackup", "before-migration")]
    assert "BackupCompleted" in reasons
    assert 'outcome="completed"' in duet_operator.metrics()


def test_a_failing_backup_is_failed_with_the_step_and_its_words(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    create_custom_object(
        custom, namespace, dp("ads", backup={"schedule": "0 3 * * *", "target": {"s3": S3}})
    )
    wait_ready(custom, namespace, "ads")
    create_custom_object(
        custom,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DataPlatformBackup",
            "metadata": {"name": "doomed"},
            "spec": {"platformRef": {"name": "ads"}, "components": ["clickhouse"]},
        },
    )
    job = wait_job(batch, namespace, "doomed-backup")
    refused = {"clickhouse": (210, "Code: 210. DB::NetException: Connection refused")}
    # backoffLimit 1: the Job tries a second pod before it gives up.
    wait_until(
        play_kubelet(core, batch, namespace, job, refused),
        timeout=RUN,
        what="the Job to fail",
    )
    failed = wait_backup(custom, namespace, "doomed", "Failed")
    message = failed["status"]["message"]
    assert "step clickhouse exited with code 210" in message
    assert "Connection refused" in message
    assert ("Warning", "BackupFailed") in events_of(core, namespace, "DataPlatformBackup", "doomed")


def run_scheduled(
    core: Any, batch: Any, namespace: str, cronjob: Any, name: str, moment: str
) -> None:
    """A run of the CronJob, as `kubectl create job --from=cronjob/...` makes one, played to
    completion: each step reports the directory `moment` names on the claim."""
    platform = cronjob.metadata.labels["duet.aidatalabs.ai/platform"]
    template = cronjob.spec.job_template
    job = client.V1Job(
        metadata=client.V1ObjectMeta(
            name=name,
            labels=template.metadata.labels,
            owner_references=[
                client.V1OwnerReference(
                    api_version="batch/v1", kind="CronJob", name=cronjob.metadata.name,
                    uid=cronjob.metadata.uid, controller=True,
                )
            ],
        ),
        spec=template.spec,
    )  # fmt: skip
    made = batch.create_namespaced_job(namespace, job)
    where = f"/backups/{platform}/{moment}"
    endings = {
        "clickhouse": (0, report("clickhouse", f"{where}/clickhouse", 300)),
        "postgres": (0, report("postgres", f"{where}/postgres", 200)),
    }
    wait_until(
        play_kubelet(core, batch, namespace, made, endings),
        timeout=RUN,
        what=f"{name} to end",
    )


def test_scheduled_backups_are_recorded_kept_by_retention_and_removed_with_spec_backup(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    target = {"pvc": {"size": "10Gi"}}
    spec = {"schedule": "30 1 * * *", "retention": 1, "target": target}
    create_custom_object(custom, namespace, dp("web", backup=spec))
    wait_ready(custom, namespace, "web")
    cronjob = wait_until(
        lambda: next(iter(batch.list_namespaced_cron_job(namespace).items), None),
        timeout=RUN,
        what="the backup CronJob",
    )
    assert cronjob.metadata.name == "web-backup"
    assert cronjob.spec.schedule == "30 1 * * *"
    claim = core.read_namespaced_persistent_volume_claim("web-backups", namespace)
    assert claim.spec.access_modes == ["ReadWriteMany"]
    assert not claim.metadata.owner_references

    def run_now(name: str, moment: str) -> None:
        run_scheduled(core, batch, namespace, cronjob, name, moment)

    run_now("web-backup-1001", "20250301T013000Z")
    first = wait_backup(custom, namespace, "web-backup-1001", "Completed")
    assert first["metadata"]["labels"]["duet.aidatalabs.ai/scheduled-by"] == "web"
    assert first["status"]["sizeBytes"] == 500
    assert first["status"]["location"] == "pvc://web-backups/web/20250301T013000Z"
    job = batch.read_namespaced_job("web-backup-1001", namespace)
    assert job.metadata.labels["duet.aidatalabs.ai/backup"] == "web-backup-1001"

    run_now("web-backup-1002", "20250302T013000Z")
    wait_backup(custom, namespace, "web-backup-1002", "Completed")
    # retention: 1, so the older completed run goes (once kwok has run its cleanup Job), and
    # is not recorded again.
    wait_until(
        lambda: get(custom, namespace, "dataplatformbackups", "web-backup-1001") is None,
        timeout=RUN,
        what="retention to delete web-backup-1001",
    )
    batch.patch_namespaced_job(
        "web-backup-1001", namespace, {"metadata": {"annotations": {"poke": "1"}}}
    )

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", "web", {"spec": {"backup": None}}
    )
    wait_until(
        lambda: not batch.list_namespaced_cron_job(namespace).items,
        timeout=RUN,
        what="the CronJob to be deleted",
    )
    # The claim holds the backups: it stays.
    assert core.read_namespaced_persistent_volume_claim("web-backups", namespace)
    assert get(custom, namespace, "dataplatformbackups", "web-backup-1001") is None
    assert get(custom, namespace, "dataplatformbackups", "web-backup-1002") is not None


# -- retention deletes data before records ---------------------------------------------------

CLEANUP_SELECTOR = "app.kubernetes.io/component=backup-cleanup"
MOMENTS = ("20250301T013000Z", "20250302T013000Z", "20250303T013000Z", "20250304T013000Z")


def scheduled_platform(custom: Any, batch: Any, namespace: str, name: str) -> Any:
    """A Ready platform that keeps 2 scheduled backups on a claim; its CronJob."""
    spec = {"schedule": "30 1 * * *", "retention": 2, "target": {"pvc": {"size": "10Gi"}}}
    create_custom_object(custom, namespace, dp(name, backup=spec))
    wait_ready(custom, namespace, name)
    return wait_until(
        lambda: next(iter(batch.list_namespaced_cron_job(namespace).items), None),
        timeout=RUN,
        what="the backup CronJob",
    )


def sample(exposition: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def cleanup_jobs(batch: Any, namespace: str) -> list[Any]:
    return list(batch.list_namespaced_job(namespace, label_selector=CLEANUP_SELECTOR).items)


def wait_cleanup(batch: Any, namespace: str, seen: set[str]) -> Any:
    """The next cleanup Job, one not in `seen`."""

    def new() -> Any:
        return next(
            (j for j in cleanup_jobs(batch, namespace) if j.metadata.name not in seen), None
        )

    return wait_until(new, timeout=RUN, what="a cleanup Job")


def platform_events(core: Any, namespace: str, name: str) -> list[Any]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=DataPlatform,involvedObject.name={name}"
    )
    return list(found.items)


def test_retention_deletes_the_oldest_runs_data_then_its_record(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    cronjob = scheduled_platform(custom, batch, namespace, "logs")
    for number, moment in enumerate(MOMENTS[:3], start=1):
        run_scheduled(core, batch, namespace, cronjob, f"logs-backup-{number}", moment)
        wait_backup(custom, namespace, f"logs-backup-{number}", "Completed")

    job = wait_cleanup(batch, namespace, set())
    assert job.metadata.name.startswith("logs-backup-cleanup-")
    assert job.metadata.annotations["duet.aidatalabs.ai/expired-backups"] == "logs-backup-1"
    assert job.metadata.owner_references[0].kind == "DataPlatform"
    (step,) = job.spec.template.spec.containers
    # The oldest run's directory on the claim, from its record's status.location.
    assert step.command[4:] == [f"logs/{MOMENTS[0]}"]
    claims = [v.persistent_volume_claim.claim_name for v in job.spec.template.spec.volumes]
    assert claims == ["logs-backups"]
    # Its data is not deleted yet: the record stays until the Job completes.
    assert get(custom, namespace, "dataplatformbackups", "logs-backup-1") is not None

    wait_until(
        play_kubelet(core, batch, namespace, job, {}), timeout=RUN, what="the cleanup to end"
    )
    wait_until(
        lambda: get(custom, namespace, "dataplatformbackups", "logs-backup-1") is None,
        timeout=RUN,
        what="retention to delete logs-backup-1 once its data is gone",
    )
    for kept in ("logs-backup-2", "logs-backup-3"):
        assert get(custom, namespace, "dataplatformbackups", kept) is not None
    messages = [e.message for e in platform_events(core, namespace, "logs")]
    assert any("logs-backup-1 and their data" in m for m in messages), messages
    labels = {"namespace": namespace, "platform": "logs", "outcome": "deleted"}
    labels["trigger"] = "retention"
    assert sample(duet_operator.metrics(), "duet_backup_cleanups_total", labels) == 1


def test_a_failed_cleanup_keeps_the_record_warns_and_is_retried_by_the_next_pass(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    cronjob = scheduled_platform(custom, batch, namespace, "events")
    for number, moment in enumerate(MOMENTS[:3], start=1):
        run_scheduled(core, batch, namespace, cronjob, f"events-backup-{number}", moment)
        wait_backup(custom, namespace, f"events-backup-{number}", "Completed")

    first = wait_cleanup(batch, namespace, set())
    words = f"refusing to delete events/{MOMENTS[0]}: reached through a symbolic link"
    wait_until(
        play_kubelet(core, batch, namespace, first, {"cleanup": (1, words)}),
        timeout=RUN,
        what="the cleanup to fail",
    )

    def warned() -> Any:
        return next(
            (
                e
                for e in platform_events(core, namespace, "events")
                if e.type == "Warning" and e.reason == "BackupCleanupFailed"
            ),
            None,
        )

    warning = wait_until(warned, timeout=RUN, what="a Warning about the failed cleanup")
    assert words in warning.message
    assert "events-backup-1" in warning.message
    assert get(custom, namespace, "dataplatformbackups", "events-backup-1") is not None
    labels = {"namespace": namespace, "platform": "events", "outcome": "failed"}
    labels["trigger"] = "retention"
    assert sample(duet_operator.metrics(), "duet_backup_cleanups_total", labels) == 1

    # The next scheduled run's pass tries again, with the run that expired since.
    run_scheduled(core, batch, namespace, cronjob, "events-backup-4", MOMENTS[3])
    retry = wait_cleanup(batch, namespace, {first.metadata.name})
    expected = "events-backup-1,events-backup-2"
    assert retry.metadata.annotations["duet.aidatalabs.ai/expired-backups"] == expected
    (step,) = retry.spec.template.spec.containers
    assert step.command[4:] == [f"events/{MOMENTS[0]}", f"events/{MOMENTS[1]}"]
    wait_until(
        play_kubelet(core, batch, namespace, retry, {}), timeout=RUN, what="the retry to end"
    )

    def both_gone() -> bool:
        names = ("events-backup-1", "events-backup-2")
        return all(get(custom, namespace, "dataplatformbackups", n) is None for n in names)

    wait_until(both_gone, timeout=RUN, what="the retried cleanup to delete both records")
    for kept in ("events-backup-3", "events-backup-4"):
        assert get(custom, namespace, "dataplatformbackups", kept) is not None


# -- deletionPolicy Delete: an on-demand backup's data goes with its record -------------------

FINALIZER = f"{GROUP}/finalizer"
DELETION_SELECTOR = "app.kubernetes.io/component=backup-deletion"


def on_demand(name: str, platform: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatformBackup",
        "metadata": {"name": name},
        "spec": {"platformRef": {"name": platform}} | spec,
    }


def completed_backup(
    custom: Any, core: Any, batch: Any, namespace: str, name: str, platform: str, **spec: Any
) -> dict[str, Any]:
    """A Ready platform backing up to a claim Duet makes, and an on-demand backup of it run to
    Completed (its steps report nothing: the location is known from its creation time)."""
    target = {"pvc": {"size": "10Gi"}}
    create_custom_object(
        custom, namespace, dp(platform, backup={"schedule": "0 3 * * *", "target": target})
    )
    wait_ready(custom, namespace, platform)
    create_custom_object(custom, namespace, on_demand(name, platform, **spec))
    job = wait_job(batch, namespace, f"{name}-backup")
    wait_until(play_kubelet(core, batch, namespace, job, {}), timeout=RUN, what="the backup")
    return wait_backup(custom, namespace, name, "Completed")


def deletion_jobs(batch: Any, namespace: str) -> list[Any]:
    return list(batch.list_namespaced_job(namespace, label_selector=DELETION_SELECTOR).items)


def wait_deletion_job(batch: Any, namespace: str, *, but: str = "", timeout: float = RUN) -> Any:
    """A cleanup Job of a deleted backup, other than the one of uid `but`."""

    def found() -> Any:
        return next((j for j in deletion_jobs(batch, namespace) if j.metadata.uid != but), None)

    return wait_until(found, timeout=timeout, what="a deletion's cleanup Job")


def delete_backup(custom: Any, namespace: str, name: str) -> None:
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "dataplatformbackups", name)


def test_a_delete_backup_deletes_its_runs_data_then_goes(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    done = completed_backup(
        custom, core, batch, namespace, "before-upgrade", "orders", deletionPolicy="Delete"
    )
    assert FINALIZER in done["metadata"]["finalizers"]
    run = stamp(datetime.fromisoformat(done["metadata"]["creationTimestamp"]))
    assert done["status"]["location"] == f"pvc://orders-backups/orders/{run}"

    delete_backup(custom, namespace, "before-upgrade")
    job = wait_deletion_job(batch, namespace)
    assert job.metadata.annotations["duet.aidatalabs.ai/deleted-backup"] == "before-upgrade"
    assert job.metadata.owner_references[0].kind == "DataPlatform"
    (step,) = job.spec.template.spec.containers
    assert step.command[4:] == [f"orders/{run}"]
    (volume,) = job.spec.template.spec.volumes
    assert volume.persistent_volume_claim.claim_name == "orders-backups"
    # Held by the finalizer while its data is deleted.
    held = get(custom, namespace, "dataplatformbackups", "before-upgrade")
    assert held is not None
    assert held["metadata"]["deletionTimestamp"]

    wait_until(play_kubelet(core, batch, namespace, job, {}), timeout=RUN, what="the cleanup")
    wait_until(
        lambda: get(custom, namespace, "dataplatformbackups", "before-upgrade") is None,
        timeout=RUN,
        what="the record to go once its data is deleted",
    )
    found = events_of(core, namespace, "DataPlatformBackup", "before-upgrade")
    assert ("Normal", "BackupDataDeleted") in found
    labels = {"namespace": namespace, "platform": "orders", "outcome": "deleted"}
    labels["trigger"] = "deletion"
    assert sample(duet_operator.metrics(), "duet_backup_cleanups_total", labels) == 1
    # Retention's cleanup of the platform is another thing: none was made.
    assert cleanup_jobs(batch, namespace) == []


def test_a_failed_deletion_keeps_the_record_warns_and_is_retried_once_its_job_is_gone(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    completed_backup(custom, core, batch, namespace, "keep-me", "carts", deletionPolicy="Delete")
    delete_backup(custom, namespace, "keep-me")
    first = wait_deletion_job(batch, namespace)
    words = "refusing to delete carts/x: reached through a symbolic link"
    wait_until(
        play_kubelet(core, batch, namespace, first, {"cleanup": (1, words)}),
        timeout=RUN,
        what="the cleanup to fail",
    )

    def warned() -> Any:
        found = core.list_namespaced_event(
            namespace,
            field_selector="involvedObject.kind=DataPlatformBackup,involvedObject.name=keep-me",
        )
        return next((e for e in found.items if e.reason == "BackupCleanupFailed"), None)

    warning = wait_until(warned, timeout=RUN, what="a Warning about the failed cleanup")
    assert warning.type == "Warning"
    assert words in warning.message
    held = get(custom, namespace, "dataplatformbackups", "keep-me")
    assert held is not None
    assert FINALIZER in held["metadata"]["finalizers"]
    failed = {"namespace": namespace, "platform": "carts", "outcome": "failed"}
    failed["trigger"] = "deletion"
    # Counted once, though the record is looked at again while the Job stays.
    assert sample(duet_operator.metrics(), "duet_backup_cleanups_total", failed) == 1

    # Deleting the failed Job is how a user asks for another try.
    batch.delete_namespaced_job(first.metadata.name, namespace, propagation_policy="Background")
    # The next look (within 30 s of the failure's) makes it anew.
    retry = wait_deletion_job(batch, namespace, but=first.metadata.uid, timeout=2 * RUN)
    wait_until(play_kubelet(core, batch, namespace, retry, {}), timeout=RUN, what="the retry")
    wait_until(
        lambda: get(custom, namespace, "dataplatformbackups", "keep-me") is None,
        timeout=RUN,
        what="the record to go once the retry deleted its data",
    )


def test_a_retain_backup_has_no_finalizer_goes_at_once_and_its_policy_cannot_change(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    done = completed_backup(custom, core, batch, namespace, "kept", "books")
    assert done["spec"]["deletionPolicy"] == "Retain"
    assert not done["metadata"].get("finalizers")

    with pytest.raises(client.ApiException) as refused:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "dataplatformbackups", "kept",
            {"spec": {"deletionPolicy": "Delete"}},
        )  # fmt: skip
    assert refused.value.status == 422
    assert "deletionPolicy cannot change after creation" in refused.value.body

    delete_backup(custom, namespace, "kept")
    # No finalizer: the API server deletes it on the spot, nothing to wait for.
    assert get(custom, namespace, "dataplatformbackups", "kept") is None
    assert deletion_jobs(batch, namespace) == []
