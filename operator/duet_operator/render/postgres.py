"""PostgreSQL for metadata: a primary and streaming replicas in one StatefulSet.

One instance is the primary: pod 0, until the healer promotes a standby
(promotePostgresReplica records its ordinal in `status.postgresPrimary`). Every other pod
clones the primary with pg_basebackup on first start and follows it as a hot standby. The
read-write Service selects the primary by its pod-index label, the read-only Service every
instance. When the primary moves, the entrypoint turns each instance into what it now is: the
chosen standby starts without its standby.signal (a promotion), and a former primary, whose
history may have diverged from the new one, is rewound onto it with pg_rewind or, failing
that, set aside and cloned anew. No data directory is ever deleted.

With spec.backup, every pod also archives its WAL to the backup target (render/wal_archive.py),
and a restore replays that archive to its end after unpacking the base backup.
"""

from __future__ import annotations

import copy
import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from duet_agents.backup.layout import WAL
from duet_agents.backup.postgres import BASE_ARCHIVE, WAL_ARCHIVE, restore_script
from duet_agents.backup.wal import recovery_script
from duet_agents.planner.models import PlatformDesign
from duet_agents.units import parse_quantity
from duet_operator.models import DataPlatform
from duet_operator.models.backup import S3Target
from duet_operator.render import objects as o
from duet_operator.render.backup_pod import DEFAULT_CONFIG, BackupConfig
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import Names, claim_labels, labels, selector
from duet_operator.render.wal_archive import postgres_wal_archiving, spool_directory

PORT = 5432
METRICS_PORT = 9187
APP = "postgres"
DATA_DIR = "/var/lib/postgresql/data"
PGDATA = f"{DATA_DIR}/pgdata"
# With spec.backup: where the archive command spools WAL for the wal-archiver sidecar.
WAL_SPOOL = spool_directory(DATA_DIR)
CONFIG_DIR = "/etc/duet-postgres"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

SUPERUSER = "postgres"
READONLY_USER = "readonly"
REPLICATION_USER = "replicator"
SUPERUSER_PASSWORD_KEY = "superuser-password"
READONLY_PASSWORD_KEY = "readonly-password"
REPLICATION_PASSWORD_KEY = "replication-password"

ENTRYPOINT = f"""#!/bin/sh
# The instance whose ordinal is $PRIMARY_ORDINAL runs the primary (and initialises it on first
# start). Every other instance clones the primary once, then follows it as a hot standby.
set -eu
ordinal="${{HOSTNAME##*-}}"
base="$(dirname "$PGDATA")"
# libpq reads the passwords from a file on the data volume (the root filesystem is read-only),
# so they are on no command line.
passfile="$base/.pgpass"
(umask 077 && printf '*:*:*:%s:%s\\n*:*:*:%s:%s\\n' \\
  {REPLICATION_USER} "$POSTGRES_REPLICATION_PASSWORD" {SUPERUSER} "$POSTGRES_PASSWORD" >"$passfile")
primary="host=$PRIMARY_HOST port=$PRIMARY_PORT passfile=$passfile"
run() {{
  # cluster_name names a standby to its primary (pg_stat_replication.application_name): the
  # healer's lag probe tells the standbys apart by it.
  exec docker-entrypoint.sh postgres -c config_file={CONFIG_DIR}/postgresql.conf \\
    -c hba_file={CONFIG_DIR}/pg_hba.conf -c cluster_name="$HOSTNAME" "$@"
}}
if [ "$ordinal" = "$PRIMARY_ORDINAL" ]; then
  if [ "$ordinal" != 0 ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    # Only the first instance of a new platform starts empty; an empty promoted one would be
    # a new, empty database in place of the platform's.
    echo "instance $ordinal is the primary but has no data: not initialising an empty one" >&2
    exit 1
  fi
  if [ -f "$PGDATA/standby.signal" ]; then
    # A standby chosen as the primary. It starts as the standby it is and is then promoted,
    # which begins a new timeline: a former primary's writes after the fork are told apart
    # and rewound, rather than mixed in (removing standby.signal would not: same timeline).
    # The server becomes PID 1 and so this helper's parent: it must end with status 0,
    # which the server takes for a normal exit.
    (
      until pg_isready --quiet --host=127.0.0.1; do sleep 1; done
      pg_ctl promote --pgdata="$PGDATA" || echo "promotion failed; the operator retries it"
      exit 0
    ) &
  fi
  run
fi
if [ -s "$PGDATA/PG_VERSION" ] && [ ! -f "$PGDATA/standby.signal" ]; then
  # A former primary: its last writes may never have reached the new one.
  echo "was a primary: rewinding onto the primary at $PRIMARY_HOST"
  # Its crash recovery must run with our settings (wal_log_hints), not the data directory's
  # own postgresql.conf; PostgreSQL before 15 cannot be told, and then relies on checksums.
  config=""
  if pg_rewind --help | grep -q -- --config-file; then
    config="--config-file={CONFIG_DIR}/postgresql.conf"
  fi
  if ! pg_rewind --target-pgdata="$PGDATA" $config \\
      --source-server="$primary user={SUPERUSER} dbname=postgres"; then
    aside="$base/pgdata.diverged.$(date -u +%Y%m%dT%H%M%SZ)"
    echo "pg_rewind failed: the old data stays in $aside; cloning the primary anew"
    mv "$PGDATA" "$aside"
  fi
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_basebackup --dbname="$primary user={REPLICATION_USER}" --pgdata="$PGDATA" \\
      --wal-method=stream --checkpoint=fast; do
    echo "waiting for the primary at $PRIMARY_HOST"; rm -rf "$PGDATA"; sleep 5
  done
  chmod 0700 "$PGDATA"
fi
touch "$PGDATA/standby.signal"
# On the command line, so that it follows PRIMARY_HOST whatever an older clone recorded.
run -c "primary_conninfo=$primary user={REPLICATION_USER} application_name=$HOSTNAME"
"""

# Runs once, when the primary's data directory is created (the image's init hook).
INIT_SQL_SCRIPT = f"""#!/bin/sh
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \\
  -v readonly_password="$POSTGRES_READONLY_PASSWORD" \\
  -v replication_password="$POSTGRES_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE {REPLICATION_USER} WITH REPLICATION LOGIN PASSWORD :'replication_password';
CREATE ROLE {READONLY_USER} WITH LOGIN PASSWORD :'readonly_password';
-- Per schema, not pg_read_all_data: that role reads every relation, system catalogs such as
-- pg_authid (password hashes) included, which would leave the query firewall the only guard.
GRANT USAGE ON SCHEMA public TO {READONLY_USER};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READONLY_USER};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READONLY_USER};
ALTER ROLE {READONLY_USER} SET default_transaction_read_only = on;
SQL
"""

HBA = f"""# Managed by Duet.
local   all             all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
host    replication     {REPLICATION_USER}      all                     scram-sha-256
host    all             all             all                     scram-sha-256
"""


def postgresql_conf(memory: str, extra: Mapping[str, str] | None = None) -> str:
    """The servers' configuration; `extra` adds settings (WAL archiving's), values as they
    are written in the file."""
    # PostgreSQL's guidance: shared_buffers about a quarter of memory, effective_cache_size
    # about three quarters.
    mib = int(parse_quantity(memory)) // 2**20
    settings = {
        "listen_addresses": "'*'",
        "max_connections": "200",
        "shared_buffers": f"'{max(mib // 4, 32)}MB'",
        "effective_cache_size": f"'{max(mib * 3 // 4, 64)}MB'",
        "wal_level": "replica",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "hot_standby": "on",
        "wal_keep_size": "'1GB'",
        # pg_rewind needs it to bring a former primary back as a standby after a promotion.
        "wal_log_hints": "on",
        "password_encryption": "'scram-sha-256'",
        "log_min_duration_statement": "1000",
    } | dict(extra or {})
    lines = [f"{key} = {value}" for key, value in sorted(settings.items())]
    return "# Managed by Duet.\n" + "\n".join(lines) + "\n"


def primary_of(platform: DataPlatform, instances: int) -> int:
    """The primary's ordinal: the promoted one, while the design still has that instance;
    else pod 0 (the only one sure to exist), whose entrypoint then promotes it."""
    promoted = platform.status.postgres_primary
    return promoted if promoted is not None and promoted < instances else 0


def build_postgres(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig = DEFAULT_CONFIG,
) -> list[o.Manifest]:
    pg = design.postgres
    if not pg.enabled or pg.instances == 0:
        return []
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    meta_labels = labels(names.platform, APP, "database", pg.version)
    select = selector(names.platform, APP)
    archiving = postgres_wal_archiving(
        platform, design, config, backup_config, data_dir=DATA_DIR, config_dir=CONFIG_DIR
    )
    files = {
        "postgresql.conf": postgresql_conf(
            pg.resources.memory, archiving.settings if archiving else None
        ),
        "pg_hba.conf": HBA,
        "entrypoint.sh": ENTRYPOINT,
        "init-roles.sh": INIT_SQL_SCRIPT,
    } | (archiving.files if archiving else {})
    credentials = names.postgres_credentials
    primary_ordinal = primary_of(platform, pg.instances)
    env = [
        {"name": "PGDATA", "value": PGDATA},
        {"name": "POSTGRES_USER", "value": SUPERUSER},
        {"name": "PRIMARY_ORDINAL", "value": str(primary_ordinal)},
        {
            "name": "PRIMARY_HOST",
            "value": names.fqdn(f"{names.postgres}-{primary_ordinal}", names.postgres_headless),
        },
        {"name": "PRIMARY_PORT", "value": str(PORT)},
        # Checksums catch corrupted pages, and let pg_rewind bring back a former primary.
        {"name": "POSTGRES_INITDB_ARGS", "value": "--data-checksums"},
        o.secret_env("POSTGRES_PASSWORD", credentials, SUPERUSER_PASSWORD_KEY),
        o.secret_env("POSTGRES_READONLY_PASSWORD", credentials, READONLY_PASSWORD_KEY),
        o.secret_env("POSTGRES_REPLICATION_PASSWORD", credentials, REPLICATION_PASSWORD_KEY),
    ]
    probe = {
        "exec": {"command": ["pg_isready", "--host=127.0.0.1", f"--username={SUPERUSER}"]},
        "periodSeconds": 5,
    }
    postgres_container = {
        "name": "postgres",
        "image": f"{config.postgres_image}:{pg.version}",
        "command": ["/bin/sh", f"{CONFIG_DIR}/entrypoint.sh"],
        "env": env,
        "ports": o.container_ports({"postgres": PORT}),
        "resources": o.container_resources(pg.resources),
        "securityContext": o.CONTAINER_SECURITY,
        "readinessProbe": probe,
        "livenessProbe": probe | {"periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "config", "mountPath": CONFIG_DIR},
            {
                "name": "config",
                "mountPath": "/docker-entrypoint-initdb.d/init-roles.sh",
                "subPath": "init-roles.sh",
            },
        ],
    }
    exporter_container = {
        "name": "exporter",
        "image": config.postgres_exporter_image,
        "env": [
            {"name": "DATA_SOURCE_URI", "value": f"127.0.0.1:{PORT}/postgres?sslmode=disable"},
            {"name": "DATA_SOURCE_USER", "value": SUPERUSER},
            o.secret_env("DATA_SOURCE_PASS", credentials, SUPERUSER_PASSWORD_KEY),
        ],
        "ports": o.container_ports({"metrics": METRICS_PORT}),
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        "securityContext": o.CONTAINER_SECURITY,
    }
    statefulset = o.statefulset(
        platform,
        o.Workload(
            name=names.postgres,
            labels=meta_labels,
            selector=select,
            claim_labels=claim_labels(names.platform, APP),
            service=names.postgres_headless,
            replicas=pg.instances,
            # Standbys clone the primary, so the primary comes first.
            pod_management="OrderedReady",
            config_hash=o.content_hash(files),
            config_map=names.postgres_config,
            run_as=999,
            containers=[
                postgres_container,
                exporter_container,
                *([archiving.container] if archiving else []),
            ],
            storage=pg.storage,
        ),
    )
    if archiving:
        pod = statefulset["spec"]["template"]["spec"]
        pod["volumes"] = [*pod["volumes"], *archiving.volumes]
    primary = select | {POD_INDEX_LABEL: str(primary_ordinal)}
    manifests = [
        o.config_map(platform, names.postgres_config, meta_labels, files),
        o.service(
            platform,
            names.postgres_headless,
            meta_labels,
            select,
            {"postgres": PORT},
            headless=True,
        ),
        o.service(platform, names.postgres_rw, meta_labels, primary, {"postgres": PORT}),
        o.service(
            platform,
            names.postgres_ro,
            meta_labels,
            select,
            {"postgres": PORT, "metrics": METRICS_PORT},
        ),
        statefulset,
    ]
    if pg.instances > 1:
        manifests.append(o.disruption_budget(platform, names.postgres, meta_labels, select))
    return manifests


def credentials_secret(
    platform: DataPlatform, names: Names, superuser: str, readonly: str, replication: str
) -> o.Manifest:
    return o.secret(
        platform,
        names.postgres_credentials,
        labels(names.platform, APP, "credentials"),
        {
            "superuser": SUPERUSER,
            SUPERUSER_PASSWORD_KEY: superuser,
            "readonly-user": READONLY_USER,
            READONLY_PASSWORD_KEY: readonly,
            "replication-user": REPLICATION_USER,
            REPLICATION_PASSWORD_KEY: replication,
        },
    )


# -- restore at provisioning (spec.restoreFrom) ------------------------------------------------

RESTORE_STEP = "restore"
DOWNLOAD_STEP = "restore-download"
RESTORE_MOUNT = "/backups"
# S3: the archives are fetched onto the data volume (sized for the data, unlike scratch space),
# beside PGDATA, and removed once unpacked.
DOWNLOAD_DIR = f"{DATA_DIR}/duet-restore"
# Beside PGDATA: says the data directory was restored, and from where.
RESTORED_MARKER = f"{DATA_DIR}/duet-restored"
# Beside PGDATA: the archive recovery's socket and log, while it runs.
RECOVERY_DIR = f"{DATA_DIR}/duet-recovery"
_ROLES = (
    (SUPERUSER, "POSTGRES_PASSWORD"),
    (READONLY_USER, "POSTGRES_READONLY_PASSWORD"),
    (REPLICATION_USER, "POSTGRES_REPLICATION_PASSWORD"),
)


@dataclass(frozen=True)
class PostgresRestore:
    """Where instance 0 of a new platform finds the base backup it starts from: a directory
    of the claim `claim`, or the key prefix `directory` (bucket included) of `s3`."""

    location: str  # the backup's status.location, recorded beside the restored data
    directory: str
    claim: str | None = None
    s3: S3Target | None = None
    downloader_image: str = ""
    # Replay the WAL archived since the backup (restoreFrom.postgresRecovery Latest or Time).
    replay_archive: bool = True
    # ... up to this moment only (postgresRecovery Time), not to the archive's end.
    recovery_target_time: datetime | None = None


def wal_archive_of(backup_dir: str) -> str:
    """The WAL archive of the platform a base backup is of: `<platform>/wal` beside the run
    `<platform>/<stamp>` whose `postgres` directory is `backup_dir`."""
    return posixpath.join(posixpath.dirname(posixpath.dirname(backup_dir.rstrip("/"))), WAL)


def restore_init_script(
    backup_dir: str,
    pgdata: str = PGDATA,
    *,
    cleanup: bool = False,
    wal_archive: str | None = None,
    target_time: datetime | None = None,
) -> str:
    """Instance 0's first step while the platform is restored: unpack the backup into the
    empty data directory (`restore_script`, which refuses a non-empty one), replay the WAL
    archived in `wal_archive` to its end (or to `target_time`) when there is any for this
    database (`recovery_script`, which promotes and checks the result), give the restored roles this
    platform's passwords (the backup holds the old platform's), and leave a marker. A
    restarted pod finds the marker and starts on what it restored; the standbys clone instance
    0 as always. The passwords come from the environment and reach the server on stdin, in
    single-user mode (which also replays the backup's own WAL when there was no archive to
    replay): never on a command line.
    """
    data = shlex.quote(pgdata)
    data_dir = posixpath.dirname(pgdata)
    work = posixpath.join(data_dir, posixpath.basename(RECOVERY_DIR))
    marker = shlex.quote(posixpath.join(data_dir, posixpath.basename(RESTORED_MARKER)))
    source = shlex.quote(backup_dir)
    archives = " ".join((BASE_ARCHIVE, WAL_ARCHIVE))
    lines = [
        "set -eu",
        '[ "${HOSTNAME##*-}" = 0 ] || exit 0',
        f"if [ -f {marker} ]; then",
        f'  echo "restored before, from $(cat {marker}): starting on it"',
        "  exit 0",
        "fi",
        f'if [ -n "$(ls -A {data} 2>/dev/null)" ]; then',
        f'  echo "{pgdata} holds data Duet did not restore: not restoring over it" >&2',
        "  exit 1",
        "fi",
        f"for archive in {archives}; do",
        f'  [ -s {source}/"$archive" ] || {{ echo "no $archive in {backup_dir}" >&2; exit 1; }}',
        "done",
        f"( {restore_script(backup_dir, pgdata).strip()}",
        ")",
        *(
            [
                "( " + recovery_script(wal_archive, pgdata, work, SUPERUSER, target_time).strip(),
                ")",
            ]
            if wal_archive is not None
            else []
        ),
        "quoted() { printf '%s' \"$1\" | sed \"s/'/''/g\"; }",
        "{",
        *(
            f'  printf "ALTER ROLE {role} PASSWORD \'%s\';\\n" "$(quoted "${env}")"'
            for role, env in _ROLES
        ),
        f"}} | postgres --single -D {data} -c password_encryption=scram-sha-256"
        " postgres >/dev/null",
        *([f"rm -rf {source}"] if cleanup else []),
        f"printf '%s\\n' \"$RESTORE_LOCATION\" > {marker}",
        'echo "restored from $RESTORE_LOCATION"',
        "",
    ]
    return "\n".join(lines)


def _download_script() -> str:
    archives = " ".join((BASE_ARCHIVE, WAL_ARCHIVE))
    return "\n".join(
        [
            "set -eu",
            '[ "${HOSTNAME##*-}" = 0 ] || exit 0',
            # Restored before, or not empty: the restore step says which, and what then.
            f'if [ -f {RESTORED_MARKER} ] || [ -n "$(ls -A {PGDATA} 2>/dev/null)" ]; then',
            "  exit 0",
            "fi",
            f"mkdir -p {DOWNLOAD_DIR}",
            f"for archive in {archives}; do",
            f'  aws s3 cp --only-show-errors "s3://$SOURCE/$archive" "{DOWNLOAD_DIR}/$archive"',
            "done",
            # The platform's whole WAL archive (every database it held: which one the backup
            # is of shows only once it is unpacked); none is not an error.
            # Without WAL_SOURCE the restore stops at the backup's end: nothing to fetch.
            'if [ -n "${WAL_SOURCE:-}" ]; then',
            "  aws s3 cp --recursive --only-show-errors"
            f' "s3://$WAL_SOURCE/" "{DOWNLOAD_DIR}/{WAL}/"',
            "fi",
            f"rmdir {DOWNLOAD_DIR}/{WAL} 2>/dev/null || :",
            "",
        ]
    )


def restore_steps(
    platform: DataPlatform, design: PlatformDesign, config: RenderConfig, restore: PostgresRestore
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The init containers that restore instance 0, and the volumes they need beyond the
    StatefulSet's own."""
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    credentials = names.postgres_credentials
    step = {
        "resources": o.container_resources(design.postgres.resources),
        "securityContext": o.CONTAINER_SECURITY,
        # A failed step leaves its log's tail as its termination message: status quotes it.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    data: dict[str, object] = {"name": "data", "mountPath": DATA_DIR}
    mounts: list[dict[str, object]] = [data]
    steps: list[dict[str, object]] = []
    volumes: list[dict[str, object]] = []
    if restore.s3 is not None:
        ref = restore.s3.secret_ref
        steps.append(
            step
            | {
                "name": DOWNLOAD_STEP,
                "image": restore.downloader_image,
                "command": ["/bin/sh", "-c", _download_script()],
                "env": [
                    {"name": "SOURCE", "value": restore.directory},
                    *(
                        [{"name": "WAL_SOURCE", "value": wal_archive_of(restore.directory)}]
                        if restore.replay_archive
                        else []
                    ),
                    {"name": "AWS_ENDPOINT_URL", "value": restore.s3.endpoint},
                    {"name": "AWS_DEFAULT_REGION", "value": restore.s3.region},
                    # The CLI keeps a cache under HOME; the image's is root's.
                    {"name": "HOME", "value": DOWNLOAD_DIR},
                    o.secret_env("AWS_ACCESS_KEY_ID", ref.name, ref.access_key_id_key),
                    o.secret_env("AWS_SECRET_ACCESS_KEY", ref.name, ref.secret_access_key_key),
                ],
                "volumeMounts": [data],
            }
        )
        backup_dir = DOWNLOAD_DIR
        wal_archive = posixpath.join(DOWNLOAD_DIR, WAL)
    else:
        assert restore.claim is not None
        backup_dir = posixpath.join(RESTORE_MOUNT, restore.directory)
        wal_archive = wal_archive_of(backup_dir)
        mounts.append({"name": "restore-source", "mountPath": RESTORE_MOUNT, "readOnly": True})
        volumes.append(
            {
                "name": "restore-source",
                "persistentVolumeClaim": {"claimName": restore.claim, "readOnly": True},
            }
        )
    steps.append(
        step
        | {
            "name": RESTORE_STEP,
            "image": f"{config.postgres_image}:{design.postgres.version}",
            "command": [
                "/bin/sh",
                "-c",
                restore_init_script(
                    backup_dir,
                    cleanup=restore.s3 is not None,
                    wal_archive=wal_archive if restore.replay_archive else None,
                    target_time=restore.recovery_target_time,
                ),
            ],
            "env": [
                {"name": "PGDATA", "value": PGDATA},
                {"name": "RESTORE_LOCATION", "value": restore.location},
                *(o.secret_env(env, credentials, key) for env, key in _PASSWORD_KEYS),
            ],
            "volumeMounts": mounts,
        }
    )
    return steps, volumes


_PASSWORD_KEYS = (
    ("POSTGRES_PASSWORD", SUPERUSER_PASSWORD_KEY),
    ("POSTGRES_READONLY_PASSWORD", READONLY_PASSWORD_KEY),
    ("POSTGRES_REPLICATION_PASSWORD", REPLICATION_PASSWORD_KEY),
)


def with_restore(
    manifests: list[o.Manifest],
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    restore: PostgresRestore | None,
) -> list[o.Manifest]:
    """`manifests` with PostgreSQL's StatefulSet restoring instance 0 from `restore` first;
    unchanged (the same objects) when there is nothing to restore."""
    if restore is None:
        return manifests
    steps, volumes = restore_steps(platform, design, config, restore)
    result = []
    for manifest in manifests:
        labels_ = manifest["metadata"].get("labels") or {}
        if manifest["kind"] != "StatefulSet" or labels_.get("app.kubernetes.io/name") != APP:
            result.append(manifest)
            continue
        restored = copy.deepcopy(manifest)
        pod = restored["spec"]["template"]["spec"]
        pod["initContainers"], pod["volumes"] = _share_claims(steps, pod["volumes"], volumes)
        result.append(restored)
    return result


def _share_claims(
    steps: list[dict[str, Any]], volumes: list[dict[str, Any]], added: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The restore steps and the pod's volumes with `added`, except a claim the pod mounts
    already (the WAL archiver's, the same target): the steps mount that volume instead, as
    they would their own (read-only), rather than the pod naming one claim twice."""
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["name"]
        for v in volumes
        if "persistentVolumeClaim" in v
    }
    renamed: dict[str, str] = {}
    kept = []
    for volume in added:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim in claims:
            renamed[volume["name"]] = claims[claim]
        else:
            kept.append(volume)
    shared = [
        step
        | {
            "volumeMounts": [
                m | {"name": renamed.get(m["name"], m["name"])} for m in step["volumeMounts"]
            ]
        }
        for step in steps
    ]
    return shared, [*volumes, *kept]


def restoring(statefulset: o.Manifest) -> bool:
    """The StatefulSet's pods restore instance 0 first (`with_restore`)."""
    pod = ((statefulset.get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(c.get("name") == RESTORE_STEP for c in pod.get("initContainers") or [])
