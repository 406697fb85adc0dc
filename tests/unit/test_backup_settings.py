"""The backup pods' settings: from the chart's values to the operator's environment, and from
there into the Jobs the operator renders (backup, retention's cleanup) and the configuration
the reconciler hands the restore."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from duet_operator import credentials
from duet_operator.backups import BackupRunner
from duet_operator.kube.client import Kube
from duet_operator.reconcile import Reconciler
from duet_operator.render.backup import build_backup_job
from duet_operator.render.backup_cleanup import ExpiredRun, build_cleanup_job
from duet_operator.render.backup_pod import DEFAULT_CONFIG
from duet_operator.render.platform import build_platform
from duet_operator.settings import OperatorSettings
from tests.support.platforms import design, platform, s3_target
from tests.unit.test_backup_render import backup_object, pod_of, steps
from tests.unit.test_chart_memory import env, pod

MIRROR = "registry.example/mirror/aws-cli:2.27.50"


def built_with(settings: OperatorSettings) -> tuple[BackupRunner, Reconciler]:
    """The operator's backup runner and reconciler as `duet operator run` makes them (no call
    reaches the API server)."""
    kube = Kube.for_server("http://127.0.0.1:9")
    try:
        return BackupRunner(kube, settings), Reconciler(kube, settings)
    finally:
        asyncio.run(kube.close())


def images(manifest: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in steps(pod_of(manifest))}


def test_the_chart_passes_the_uploader_image_only_when_set() -> None:
    assert "DUET_BACKUP__UPLOADER_IMAGE" not in env(pod())
    assert env(pod(f"backup.uploaderImage={MIRROR}"))["DUET_BACKUP__UPLOADER_IMAGE"] == MIRROR


def test_without_settings_the_backup_pods_keep_the_builders_defaults() -> None:
    runner, reconciler = built_with(OperatorSettings())
    assert runner.config == DEFAULT_CONFIG
    assert reconciler.backup_config == DEFAULT_CONFIG


def test_a_setting_reaches_the_jobs_the_operator_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUET_BACKUP__UPLOADER_IMAGE", MIRROR)
    monkeypatch.setenv("DUET_BACKUP__ACTIVE_DEADLINE_SECONDS", "7200")
    monkeypatch.setenv("DUET_BACKUP__RESOURCES", '{"limits": {"cpu": "2", "memory": "2Gi"}}')
    runner, reconciler = built_with(OperatorSettings())
    # One configuration for the runner's Jobs, retention's and deletion's cleanups, and the
    # reconciler (which hands it to a restore's steps).
    assert runner.retention.config == runner.config == runner.deletion.config
    assert reconciler.backup_config == runner.config
    owner = platform(backup={"schedule": "0 2 * * *", "target": {"s3": s3_target()}})
    # What BackupRunner._start renders for an on-demand run.
    job = build_backup_job(backup_object(), owner, design(), runner.render_config, runner.config)
    assert images(job)["upload"] == MIRROR
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert all(
        c["resources"] == {"limits": {"cpu": "2", "memory": "2Gi"}} for c in steps(pod_of(job))
    )
    # What a retention pass renders to delete expired runs from the bucket.
    cleanup = build_cleanup_job(
        owner,
        design(),
        runner.render_config,
        runner.retention.config,
        runs=[ExpiredRun("clicks-backup-1", "clicks/20250301T020000Z")],
        trigger="clicks-backup-9",
    )
    assert set(images(cleanup).values()) == {MIRROR}


def test_a_setting_reaches_the_platforms_own_archiver_and_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUET_BACKUP__UPLOADER_IMAGE", MIRROR)
    _, reconciler = built_with(OperatorSettings())
    owner = platform(backup={"schedule": "0 2 * * *", "target": {"s3": s3_target()}})
    rendered = build_platform(
        owner,
        design(),
        reconciler.render_config,
        credentials.fill(),
        backup_config=reconciler.backup_config,
    )
    (postgres,) = [
        m
        for m in rendered
        if m["kind"] == "StatefulSet" and m["metadata"]["name"].endswith("-postgres")
    ]
    sidecars = {c["name"]: c["image"] for c in postgres["spec"]["template"]["spec"]["containers"]}
    assert sidecars["wal-archiver"] == MIRROR
    (cronjob,) = [m for m in rendered if m["kind"] == "CronJob"]
    assert images(cronjob)["upload"] == MIRROR


def test_a_bad_setting_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUET_BACKUP__UPLOADER_IMAGE", "")
    with pytest.raises(ValueError, match="uploader_image"):
        OperatorSettings()
