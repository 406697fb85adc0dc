"""The database probes' pure parts (rows -> readings, lag merging, reachability, targets,
crashed containers, log excerpts), and how a probe degrades against real sockets on loopback
that refuse or never answer. The engines themselves: tests/integration/test_probes.py."""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from duet_agents.healer import Observation, Thresholds, detect
from duet_agents.healer.observations import (
    MAX_PROBE_ERROR_CHARS,
    Component,
    PostgresLag,
)
from duet_agents.healer.probes import (
    ProbeReadings,
    ProbeTarget,
    ServerReading,
    WalSender,
    WalSpool,
    merge_lag,
    probe,
    probe_all,
    reachability,
    readings_of,
    replica_rows,
    safe_error,
    standby_seconds,
    volume_usage,
    wal_senders,
    wal_spool,
)
from duet_agents.query.engines import ConnectionFailedError, parse_url
from duet_agents.query.engines.urls import Scheme
from duet_operator.kube.client import Kube, KubeError
from duet_operator.probes import (
    SPOOL_FROM_PGDATA,
    Crash,
    Credentials,
    DatabaseProbes,
    Login,
    ProbeSettings,
    crashed_containers,
    identity,
    log_excerpt,
    login_from,
    plan_targets,
    probed_pods,
    server_url,
)
from duet_operator.render import postgres
from duet_operator.render.naming import Names
from tests.support.operator import free_port
from tests.support.platforms import platform, s3_target

PASSWORD = "hunter2-Secret"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NAMES = Names("web", "analytics")


def reading(pod: str, component: Component = Component.POSTGRES, **fields: Any) -> ServerReading:
    return ServerReading(pod=pod, component=component, **fields)


def pod(
    name: str,
    app: str = "clickhouse",
    *,
    ip: str | None = "10.0.0.1",
    deleting: bool = False,
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "labels": {"app.kubernetes.io/name": app},
    }
    if deleting:
        meta["deletionTimestamp"] = "2025-06-01T11:59:00Z"
    status: dict[str, Any] = {"phase": "Running", "containerStatuses": containers or []}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status}


def crashed(name: str, restarts: int, finished: datetime, *, ready: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "lastState": {
            "terminated": {
                "reason": "Error",
                "exitCode": 1,
                "finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        },
    }


# -- rows -> readings ---------------------------------------------------------------------------


def test_volume_usage_keeps_disks_with_a_size_sorted_by_name() -> None:
    rows = [("hot", 10, 100), ("default", 900, 1000), ("empty-cache", 0, 0)]
    found = volume_usage("web-clickhouse-0-0", rows)
    assert [(v.disk, v.free_bytes, v.total_bytes) for v in found] == [
        ("default", 900, 1000),
        ("hot", 10, 100),
    ]
    assert {v.pod for v in found} == {"web-clickhouse-0-0"}


def test_replica_rows_read_flags_and_counters() -> None:
    rows = [("default", "events", 1, 0, 420, 7), ("default", "users", 0, 1, 0, 0)]
    events, users = replica_rows("p", rows)
    assert (events.is_readonly, events.is_session_expired, events.absolute_delay) == (
        True,
        False,
        420,
    )
    assert events.queue_size == 7
    assert (users.is_readonly, users.is_session_expired) == (False, True)


def test_wal_senders_tolerate_nulls() -> None:
    senders = wal_senders([("web-postgres-1", "10.0.0.2", 4096), (None, None, None)])
    assert senders == [
        WalSender(application_name="web-postgres-1", address="10.0.0.2", bytes_behind=4096),
        WalSender(application_name="", address=None, bytes_behind=None),
    ]


@pytest.mark.parametrize(
    ("streaming", "caught_up", "age", "expected"),
    [
        (True, True, 9000.0, 0.0),  # an idle primary: nothing to replay is no lag
        (True, False, 12.5, 12.5),
        (False, True, 600.0, 600.0),  # not streaming: what it has may be old
        (True, False, None, None),  # replayed nothing since it started
        (True, False, -0.2, 0.0),  # the clocks of two hosts differ a little
    ],
)
def test_standby_seconds(
    streaming: bool, caught_up: bool, age: float | None, expected: float | None
) -> None:
    assert standby_seconds(streaming, caught_up, age) == expected


# -- merging PostgreSQL's two views -------------------------------------------------------------


def test_wal_spool_reads_the_count_and_the_oldest_age() -> None:
    assert wal_spool("web-postgres-0", (True, 3, 725.5)) == WalSpool(
        pod="web-postgres-0", files=3, oldest_seconds=725.5
    )
    # Nothing waits: no age, rather than `now() - NULL`'s.
    assert wal_spool("p", (True, 0, None)) == WalSpool(pod="p", files=0, oldest_seconds=None)
    # A file whose mtime is ahead of the server's clock is waiting, not in the future.
    assert wal_spool("p", (True, 1, -2.0)) == WalSpool(pod="p", files=1, oldest_seconds=0.0)
    # No spool directory (no spec.backup, or nothing archived yet) is no reading at all.
    assert wal_spool("p", (False, 0, None)) is None
    assert wal_spool("p", None) is None


def test_only_spool_readings_that_were_taken_reach_the_readings() -> None:
    spool = WalSpool(pod="web-postgres-0", files=2, oldest_seconds=90)
    readings = readings_of(
        [
            reading("web-postgres-1", in_recovery=True, standby_seconds=0),
            reading("web-postgres-0", in_recovery=False, wal_spool=spool),
            reading("web-clickhouse-0-0", Component.CLICKHOUSE),
        ]
    )
    assert readings.wal_spool == [spool]


def test_lag_merges_the_primary_bytes_with_the_standby_seconds() -> None:
    readings = [
        reading(
            "web-postgres-0",
            in_recovery=False,
            senders=[WalSender(application_name="web-postgres-1", bytes_behind=2048)],
        ),
        reading("web-postgres-1", in_recovery=True, standby_seconds=3.0),
    ]
    assert merge_lag(readings) == [PostgresLag(standby="web-postgres-1", bytes=2048, seconds=3.0)]


def test_lag_matches_a_standby_by_address_when_its_application_name_is_generic() -> None:
    readings = [
        reading(
            "web-postgres-0",
            in_recovery=False,
            senders=[
                WalSender(application_name="walreceiver", address="10.0.0.2", bytes_behind=10),
                WalSender(application_name="pg_basebackup", address="10.9.9.9", bytes_behind=5),
            ],
        ),
        reading("web-postgres-1", address="10.0.0.2", in_recovery=True, standby_seconds=0.0),
    ]
    # The backup tool's walsender matches no pod and is left out.
    assert merge_lag(readings) == [PostgresLag(standby="web-postgres-1", bytes=10, seconds=0.0)]


def test_lag_of_a_silent_standby_still_has_the_primary_view() -> None:
    readings = [
        reading(
            "web-postgres-0",
            in_recovery=False,
            senders=[
                WalSender(application_name="web-postgres-2", bytes_behind=None),
                WalSender(application_name="web-postgres-2", bytes_behind=300),
            ],
        ),
        reading("web-postgres-2", error="cannot connect"),
    ]
    assert merge_lag(readings) == [PostgresLag(standby="web-postgres-2", bytes=300, seconds=None)]


def test_lag_without_the_primary_has_seconds_only() -> None:
    readings = [
        reading("web-postgres-0", error="no answer"),
        reading("web-postgres-1", in_recovery=True, standby_seconds=42.0),
    ]
    assert merge_lag(readings) == [PostgresLag(standby="web-postgres-1", bytes=None, seconds=42.0)]


def test_a_promoted_standby_counts_as_a_primary() -> None:
    # The operator still calls pod 1 a standby, but it left recovery: its walsenders count.
    readings = [
        reading("web-postgres-0", in_recovery=True, standby_seconds=None),
        reading(
            "web-postgres-1",
            in_recovery=False,
            senders=[WalSender(application_name="web-postgres-0", bytes_behind=0)],
        ),
    ]
    assert merge_lag(readings) == [PostgresLag(standby="web-postgres-0", bytes=0, seconds=None)]


# -- reachability --------------------------------------------------------------------------------


def test_nothing_probed_is_unknown() -> None:
    probes = reachability([])
    assert (probes.clickhouse, probes.postgres, probes.unreachable_pods) == (None, None, [])


def test_one_silent_server_among_answering_ones_is_named() -> None:
    probes = reachability(
        [
            reading("web-clickhouse-0-0", Component.CLICKHOUSE),
            reading("web-clickhouse-0-1", Component.CLICKHOUSE, error="Connection refused"),
            reading("web-postgres-0", in_recovery=False),
        ]
    )
    assert probes.clickhouse is True
    assert probes.postgres is True
    assert probes.unreachable_pods == ["web-clickhouse-0-1"]
    assert probes.clickhouse_error == "web-clickhouse-0-1: Connection refused"
    assert probes.reachable(Component.CLICKHOUSE, "web-clickhouse-0-1") is False
    assert probes.reachable(Component.CLICKHOUSE, "web-clickhouse-0-0") is True


def test_no_server_answering_makes_the_component_unreachable_with_a_bounded_error() -> None:
    probes = reachability(
        [reading(f"web-postgres-{i}", error="x" * 150) for i in range(3)]
        + [reading("web-clickhouse-0-0", Component.CLICKHOUSE)]
    )
    assert probes.postgres is False
    assert probes.postgres_error is not None
    assert probes.postgres_error.startswith("web-postgres-0: xxx")
    assert len(probes.postgres_error) <= MAX_PROBE_ERROR_CHARS
    assert probes.unreachable_pods == []
    assert probes.clickhouse is True


def test_readings_feed_the_symptom_rules() -> None:
    # A nearly full disk and a read-only replica from the probes become symptoms; the same
    # readings from a pod whose probe failed do not.
    readings = readings_of(
        [
            reading(
                "web-clickhouse-0-0",
                Component.CLICKHOUSE,
                volumes=volume_usage("web-clickhouse-0-0", [("default", 5, 100)]),
                replicas=replica_rows("web-clickhouse-0-0", [("default", "events", 1, 1, 0, 3)]),
            ),
            reading("web-clickhouse-0-1", Component.CLICKHOUSE, error="Connection refused"),
        ]
    )
    observation = Observation(
        platform="web",
        volumes=readings.volumes,
        clickhouse_replicas=readings.clickhouse_replicas,
        postgres_lag=readings.postgres_lag,
        probes=readings.probes,
    )
    symptoms = detect(observation, NOW, Thresholds())
    assert sorted(s.key for s in symptoms) == [
        "ReplicationLag/pod/web-clickhouse-0-0",
        "VolumeNearlyFull/pod/web-clickhouse-0-0",
    ]


# -- errors carry no credentials ----------------------------------------------------------------


def test_safe_error_scrubs_the_password_and_url_credentials() -> None:
    url = parse_url(f"postgresql://postgres:{PASSWORD}@db:5432/postgres")
    error = ConnectionFailedError(
        f"postgresql://postgres:{PASSWORD}@db:5432/postgres failed; password={PASSWORD}\nhint"
    )
    text = safe_error(error, url, 5)
    assert PASSWORD not in text
    assert "hint" not in text
    assert len(text) <= MAX_PROBE_ERROR_CHARS


def test_safe_error_names_a_timeout() -> None:
    url = parse_url("clickhouse://admin:x@db:8123/")
    assert safe_error(TimeoutError(), url, 2.5) == "no answer within 2.5 s"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", ["clickhouse", "postgresql"])
async def test_a_refused_connection_degrades_without_the_password(scheme: str) -> None:
    port = free_port()  # nothing listens there
    target = ProbeTarget(
        pod="web-x-0",
        component=Component.POSTGRES if scheme == "postgresql" else Component.CLICKHOUSE,
        url=parse_url(f"{scheme}://admin:{PASSWORD}@127.0.0.1:{port}/postgres"),
    )
    found = await probe(target, timeout=5)
    assert found.error is not None
    assert "refused" in found.error.lower()
    assert PASSWORD not in found.error
    assert PASSWORD not in repr(target)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.mark.anyio
async def test_a_silent_server_is_given_up_on_at_the_timeout(silent_server: int) -> None:
    targets = [
        ProbeTarget(
            pod="web-postgres-0",
            component=Component.POSTGRES,
            url=parse_url(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{silent_server}/postgres"),
        ),
        ProbeTarget(
            pod="web-clickhouse-0-0",
            component=Component.CLICKHOUSE,
            url=parse_url(f"clickhouse://admin:{PASSWORD}@127.0.0.1:{silent_server}/"),
        ),
    ]
    readings = await probe_all(targets, timeout=1)
    assert readings.probes.postgres is False
    assert readings.probes.clickhouse is False
    assert readings.probes.postgres_error == "web-postgres-0: no answer within 1 s"
    assert readings.probes.clickhouse_error is not None
    assert PASSWORD not in readings.model_dump_json()


# -- the operator's side: targets -----------------------------------------------------------------


LOGINS = Credentials(
    clickhouse=Login("admin", SecretStr(PASSWORD)), postgres=Login("postgres", SecretStr("pg"))
)


def test_servers_are_reached_through_their_headless_service() -> None:
    ch = server_url(NAMES, "web-clickhouse-1-0", Component.CLICKHOUSE, LOGINS.clickhouse)
    assert ch.scheme is Scheme.CLICKHOUSE
    assert ch.host == "web-clickhouse-1-0.web-clickhouse-headless.analytics.svc.cluster.local"
    assert (ch.port, ch.user, ch.secret()) == (8123, "admin", PASSWORD)
    pg = server_url(NAMES, "web-postgres-1", Component.POSTGRES, LOGINS.postgres)
    assert pg.host == "web-postgres-1.web-postgres-headless.analytics.svc.cluster.local"
    assert (pg.port, pg.user, pg.database) == (5432, "postgres", "postgres")
    assert PASSWORD not in str(ch)
    assert PASSWORD not in repr(ch)


def test_an_override_keeps_its_own_login_or_takes_the_platform_one() -> None:
    bare = server_url(
        NAMES, "p", Component.POSTGRES, LOGINS.postgres, "postgresql://127.0.0.1:6543/app"
    )
    assert (bare.host, bare.port, bare.database, bare.user, bare.secret()) == (
        "127.0.0.1",
        6543,
        "app",
        "postgres",
        "pg",
    )
    own = server_url(NAMES, "p", Component.POSTGRES, LOGINS.postgres, "postgresql://me:pw@h/db")
    assert (own.user, own.secret()) == ("me", "pw")
    chdb = server_url(NAMES, "p", Component.CLICKHOUSE, "no Secret", "chdb:///tmp/ch")
    assert (chdb.scheme, chdb.path) == (Scheme.CHDB, "/tmp/ch")


def test_a_missing_login_is_the_error() -> None:
    with pytest.raises(ValueError, match="credentials Secret web-postgres-credentials not found"):
        server_url(
            NAMES, "p", Component.POSTGRES, "credentials Secret web-postgres-credentials not found"
        )


def test_login_from_secret_data() -> None:
    assert login_from(None, "superuser", "postgres", "superuser-password", "s") == (
        "credentials Secret s not found"
    )
    assert login_from({}, "superuser", "postgres", "superuser-password", "s") == (
        "credentials Secret s has no superuser-password"
    )
    login = login_from(
        {"superuser-password": "pw"}, "superuser", "postgres", "superuser-password", "s"
    )
    assert login == Login("postgres", SecretStr("pw"))
    assert "pw" not in repr(login)


def test_only_addressed_database_pods_are_probed() -> None:
    pods = [
        pod("web-clickhouse-0-1"),
        pod("web-clickhouse-0-0"),
        pod("web-keeper-0", "clickhouse-keeper"),
        pod("web-postgres-0", "postgres"),
        pod("web-postgres-1", "postgres", ip=None),  # not scheduled yet
        pod("web-clickhouse-1-0", deleting=True),
        pod("web-agent-abc", "query-agent"),
    ]
    assert [p["metadata"]["name"] for p in probed_pods(pods)] == [
        "web-clickhouse-0-0",
        "web-clickhouse-0-1",
        "web-postgres-0",
    ]


def test_plan_targets_fails_the_pods_without_credentials_up_front() -> None:
    pods = [pod("web-clickhouse-0-0", ip="10.0.0.5"), pod("web-postgres-0", "postgres")]
    credentials = Credentials(
        clickhouse=LOGINS.clickhouse,
        postgres="credentials Secret web-postgres-credentials not found",
    )
    targets, failed = plan_targets(
        NAMES,
        pods,
        credentials,
        {"analytics/web-clickhouse-0-0": "chdb:///tmp/x", "web-clickhouse-0-0": "bad://"},
    )
    # "namespace/pod" wins over "pod".
    assert [(t.pod, t.url.scheme, t.address) for t in targets] == [
        ("web-clickhouse-0-0", Scheme.CHDB, "10.0.0.5")
    ]
    assert [(f.pod, f.error) for f in failed] == [
        ("web-postgres-0", "credentials Secret web-postgres-credentials not found")
    ]


def test_the_spool_is_asked_of_postgresql_servers_only_when_the_platform_archives() -> None:
    pods = [pod("web-clickhouse-0-0"), pod("web-postgres-0", "postgres")]
    plain, _ = plan_targets(NAMES, pods, LOGINS, {})
    assert [t.wal_spool for t in plain] == [None, None]
    archiving, _ = plan_targets(NAMES, pods, LOGINS, {}, wal_spool=SPOOL_FROM_PGDATA)
    assert [(t.pod, t.wal_spool) for t in archiving] == [
        ("web-clickhouse-0-0", None),
        ("web-postgres-0", "../duet-wal-spool"),
    ]


def test_the_spool_path_from_pgdata_is_where_the_rendered_pod_spools() -> None:
    assert posixpath.normpath(posixpath.join(postgres.PGDATA, SPOOL_FROM_PGDATA)) == (
        postgres.WAL_SPOOL
    )


def test_an_override_that_does_not_parse_fails_that_pod_only() -> None:
    targets, failed = plan_targets(
        NAMES, [pod("web-clickhouse-0-0")], LOGINS, {"web-clickhouse-0-0": "mysql://x:y@h/"}
    )
    assert targets == []
    assert failed[0].error is not None
    assert "unsupported database URL" in failed[0].error


def test_identity_changes_with_a_new_pod() -> None:
    before = identity([pod("web-clickhouse-0-0", ip="10.0.0.1")])
    assert before == identity(
        [pod("web-clickhouse-0-0", ip="10.0.0.1"), pod("web-keeper-0", "clickhouse-keeper")]
    )
    assert before != identity([pod("web-clickhouse-0-0", ip="10.0.0.9")])


def test_probe_settings_read_the_url_map_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "DUET_PROBE_URLS", '{"web-postgres-0": "postgresql://127.0.0.1:5432/postgres"}'
    )
    monkeypatch.setenv("DUET_PROBE_TIMEOUT_SECONDS", "2")
    settings = ProbeSettings()
    assert settings.urls == {"web-postgres-0": "postgresql://127.0.0.1:5432/postgres"}
    assert settings.timeout_seconds == 2


# -- the operator's side: crash logs ------------------------------------------------------------


def test_crashed_containers_are_those_whose_last_run_matters_now() -> None:
    window = timedelta(hours=1)
    pods = [
        pod(
            "web-clickhouse-0-0",
            containers=[
                crashed("clickhouse", 3, NOW - timedelta(seconds=20)),
                {"name": "exporter", "ready": True, "restartCount": 0},
            ],
        ),
        pod(
            "web-postgres-0",
            "postgres",
            containers=[
                crashed("postgres", 1, NOW - timedelta(days=3), ready=True),  # old history
                crashed("exporter", 2, NOW - timedelta(minutes=5), ready=True),  # recent
            ],
        ),
        pod("web-agent-x", "query-agent", containers=[crashed("agent", 9, NOW)]),
    ]
    assert crashed_containers(pods, NOW, window) == [
        Crash("web-clickhouse-0-0", "uid-web-clickhouse-0-0", "clickhouse", 3),
        Crash("web-postgres-0", "uid-web-postgres-0", "exporter", 2),
    ]


def test_log_excerpt_is_redacted_clipped_and_the_tail() -> None:
    text = "\n".join(
        [*(f"line {i}" for i in range(10)), "", f"auth failed: password={PASSWORD}", "x" * 5000]
    )
    excerpt = log_excerpt("web-postgres-0", "postgres", text, 3)
    assert excerpt.lines[0] == "line 9"
    assert excerpt.lines[1] == "auth failed: password=***"
    assert len(excerpt.lines[2]) <= 240
    assert PASSWORD not in excerpt.model_dump_json()


@pytest.fixture
async def fake_api_server() -> AsyncIterator[tuple[str, list[str]]]:
    """An API server on loopback that knows only pod logs, driven through the real client:
    web-clickhouse-0-0 has a previous log; any other pod answers as an API server does when
    there is none."""
    asked: list[str] = []

    async def pod_log(request: web.Request) -> web.Response:
        asked.append(f"{request.match_info['pod']}?{request.query_string}")
        if request.match_info["pod"] != "web-clickhouse-0-0":
            return web.json_response(
                {
                    "kind": "Status",
                    "status": "Failure",
                    "code": 400,
                    "reason": "BadRequest",
                    "message": 'previous terminated container "clickhouse" not found',
                },
                status=400,
            )
        # One JSON line among others: the log must come back as the text it is.
        body = f'starting\n{{"level": "fatal", "msg": "bad config"}}\nPASSWORD={PASSWORD}\n'
        return web.Response(text=body)

    async def discovery(_: web.Request) -> web.Response:
        pods = {"name": "pods", "kind": "Pod", "namespaced": True}
        log = {"name": "pods/log", "kind": "Pod", "namespaced": True}
        return web.json_response({"kind": "APIResourceList", "resources": [pods, log]})

    app = web.Application()
    app.router.add_get("/api/v1", discovery)
    app.router.add_get("/api/v1/namespaces/{namespace}/pods/{pod}/log", pod_log)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        await runner.cleanup()


def kube_at(host: str) -> Kube:
    return Kube.for_server(host)


@pytest.mark.anyio
async def test_pod_log_reads_the_previous_run_raw(fake_api_server: tuple[str, list[str]]) -> None:
    host, asked = fake_api_server
    kube = kube_at(host)
    try:
        text = await kube.pod_log(
            "web-clickhouse-0-0", "analytics", "clickhouse", previous=True, tail_lines=5
        )
        assert '{"level": "fatal", "msg": "bad config"}' in text.splitlines()
        assert "previous=true" in asked[0].lower()  # Go's ParseBool takes True
        assert "tailLines=5" in asked[0]
        with pytest.raises(KubeError) as refused:
            await kube.pod_log("web-postgres-0", "analytics", "postgres", previous=True)
        assert refused.value.code == 400
        assert "not found" in str(refused.value)
    finally:
        await kube.close()


@pytest.mark.anyio
async def test_crash_logs_are_read_once_per_run(fake_api_server: tuple[str, list[str]]) -> None:
    host, asked = fake_api_server
    kube = kube_at(host)
    probes = DatabaseProbes(kube, ProbeSettings(log_lines=2, max_logs=4))
    pods = [
        pod("web-clickhouse-0-0", containers=[crashed("clickhouse", 3, NOW)]),
        pod("web-postgres-0", "postgres", containers=[crashed("postgres", 1, NOW)]),
    ]
    try:
        first = await probes.logs(NAMES, pods, NOW)
        again = await probes.logs(NAMES, pods, NOW)
        pods[0]["status"]["containerStatuses"] = [crashed("clickhouse", 4, NOW)]
        await probes.logs(NAMES, pods, NOW)
    finally:
        await kube.close()
    # The second run's log only; the pod without one gives no excerpt, and the pass goes on.
    assert [(e.pod, e.container, e.lines) for e in first] == [
        (
            "web-clickhouse-0-0",
            "clickhouse",
            ['{"level": "fatal", "msg": "bad config"}', "PASSWORD=***"],
        )
    ]
    assert again == first
    # Two reads at first (at once), none again for the same runs, one for the new run.
    read = [a.split("?")[0] for a in asked]
    assert sorted(read[:2]) == ["web-clickhouse-0-0", "web-postgres-0"]
    assert read[2:] == ["web-clickhouse-0-0"]


class SpoolAsked(DatabaseProbes):
    """The operator's probes, recording which spool each pass asks the databases about."""

    def __init__(self) -> None:
        super().__init__(kube_at("http://127.0.0.1:9"))
        self.asked: list[str | None] = []

    async def databases(
        self, names: Names, pods: Sequence[dict[str, Any]], *, wal_spool: str | None = None
    ) -> ProbeReadings:
        self.asked.append(wal_spool)
        return ProbeReadings()


@pytest.mark.anyio
async def test_the_spool_is_read_only_for_a_platform_that_archives() -> None:
    probes = SpoolAsked()
    backup = {"schedule": "0 2 * * *", "target": {"s3": s3_target()}}
    try:
        await probes.observe(platform("web", "analytics"), [])
        await probes.observe(platform("web", "analytics", backup=backup), [])
    finally:
        await probes.kube.close()
    # Without spec.backup there is no sidecar: files left in a spool are nobody's backlog.
    assert probes.asked == [None, SPOOL_FROM_PGDATA]
