"""PostgreSQL for metadata: a primary and streaming replicas in one StatefulSet.

One instance is the primary: pod 0, until the healer promotes a standby
(promotePostgresReplica records its ordinal in `status.postgresPrimary`). Every other pod
clones the primary with pg_basebackup on first start and follows it as a hot standby. The
read-write Service selects the primary by its pod-index label, the read-only Service every
instance. When the primary moves, the entrypoint turns each instance into what it now is: the
chosen standby starts without its standby.signal (a promotion), and a former primary, whose
history may have diverged from the new one, is rewound onto it with pg_rewind or, failing
that, set aside and cloned anew. No data directory is ever deleted.
"""

from __future__ import annotations

from duet_agents.planner.models import PlatformDesign
from duet_agents.units import parse_quantity
from duet_operator.models import DataPlatform
from duet_operator.render import objects as o
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import Names, claim_labels, labels, selector

PORT = 5432
METRICS_PORT = 9187
APP = "postgres"
DATA_DIR = "/var/lib/postgresql/data"
PGDATA = f"{DATA_DIR}/pgdata"
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


def postgresql_conf(memory: str) -> str:
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
    }
    lines = [f"{key} = {value}" for key, value in sorted(settings.items())]
    return "# Managed by Duet.\n" + "\n".join(lines) + "\n"


def primary_of(platform: DataPlatform, instances: int) -> int:
    """The primary's ordinal: the promoted one, while the design still has that instance;
    else pod 0 (the only one sure to exist), whose entrypoint then promotes it."""
    promoted = platform.status.postgres_primary
    return promoted if promoted is not None and promoted < instances else 0


def build_postgres(
    platform: DataPlatform, design: PlatformDesign, config: RenderConfig
) -> list[o.Manifest]:
    pg = design.postgres
    if not pg.enabled or pg.instances == 0:
        return []
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    meta_labels = labels(names.platform, APP, "database", pg.version)
    select = selector(names.platform, APP)
    files = {
        "postgresql.conf": postgresql_conf(pg.resources.memory),
        "pg_hba.conf": HBA,
        "entrypoint.sh": ENTRYPOINT,
        "init-roles.sh": INIT_SQL_SCRIPT,
    }
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
            containers=[postgres_container, exporter_container],
            storage=pg.storage,
        ),
    )
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
