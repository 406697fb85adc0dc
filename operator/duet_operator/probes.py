"""The healer's database probes and crash logs, on the operator's side.

`DatabaseProbes.observe(platform, pods)` gives the parts of an `Observation` that the pods'
API objects cannot: disk and replication readings from the databases themselves
(`duet_agents.healer.probes`) and the previous run's last log lines of crashed containers.

- Targets: every ClickHouse and PostgreSQL pod the API lists (Keeper has no probe), each by
  its name in the headless Service (`<pod>.<service>.<namespace>.svc.<domain>`, which
  publishes not-ready pods too), on ClickHouse's HTTP port as its `admin` user and on
  PostgreSQL's port as the superuser, with the passwords from the platform's credentials
  Secrets. `ProbeSettings.urls` sends a pod elsewhere (a developer outside the cluster, a
  test pointing a "pod" at chDB or a local PostgreSQL).
- With spec.backup, the primary's WAL archive spool (render/postgres.py's WAL_SPOOL) is read
  too, by its path from PGDATA (`SPOOL_FROM_PGDATA`): the server resolves it against its own
  data directory, so a "pod" sent to a local server by `ProbeSettings.urls` is read in the
  same layout. The superuser may list it; a role without pg_read_server_files could not
  (docs/probes.md).
- Readings are kept for `interval_seconds` while the platform's servers are the same pods
  (same uid and IP): pod events come in bursts, and a burst is one probe, not one per event.
- Logs: a container that restarted, whose last run terminated, and that is not Ready or
  ended within `log_window_seconds`, has its previous run's last `log_lines` lines read once
  per run (`kubectl logs --previous --tail`), redacted and clipped. That needs `get` on
  `pods/log`; without it (or without a kubelet to answer, as with kwok) there are simply no
  log lines.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from duet_agents.healer.evidence import clip, redact
from duet_agents.healer.observations import Component, LogExcerpt
from duet_agents.healer.probes import (
    ProbeReadings,
    ProbeTarget,
    ServerReading,
    probe_each,
    readings_of,
)
from duet_agents.healer.readings import component_of, has_component
from duet_agents.query.engines import InvalidURLError, parse_url
from duet_agents.query.engines.urls import DatabaseURL, Scheme
from duet_operator.kube.client import Kube, KubeError, KubeUnreachableError, Manifest
from duet_operator.models import DataPlatform
from duet_operator.render import clickhouse, postgres
from duet_operator.render.naming import Names

log = logging.getLogger("duet.probes")

PROBED = (Component.CLICKHOUSE, Component.POSTGRES)
# "../duet-wal-spool": PostgreSQL runs in PGDATA and resolves a relative path from there.
SPOOL_FROM_PGDATA = posixpath.relpath(postgres.WAL_SPOOL, postgres.PGDATA)


class ProbeSettings(BaseSettings):
    """`DUET_PROBE_<FIELD>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DUET_PROBE_")

    enabled: bool = Field(default=True, description="Probe the databases and read crash logs.")
    timeout_seconds: float = Field(
        default=5, gt=0, le=60, description="Each server's probe, and each log read."
    )
    interval_seconds: float = Field(
        default=30,
        ge=0,
        description="Readings are reused this long while the platform's pods stay the same.",
    )
    concurrency: int = Field(default=8, ge=1, le=64, description="Servers probed at once.")
    log_lines: int = Field(default=40, ge=0, le=200, description="Lines per crashed container.")
    max_logs: int = Field(
        default=4, ge=0, le=32, description="Crashed containers whose log is read per pass."
    )
    log_window_seconds: float = Field(
        default=3600,
        gt=0,
        description="A Ready container's last crash older than this is history, not evidence.",
    )
    urls: dict[str, str] = Field(
        default_factory=dict,
        description='Where to reach a pod instead of its Service name, by "namespace/pod" or'
        ' "pod": {"web-clickhouse-0-0": "chdb:///tmp/ch", "web-postgres-0":'
        ' "postgresql://127.0.0.1:5432/postgres"}. Credentials the URL lacks come from the'
        " platform's Secret.",
    )


@dataclass(frozen=True)
class Login:
    """A user and its password (a SecretStr: a repr of the login shows no password)."""

    user: str
    password: SecretStr


@dataclass(frozen=True)
class Credentials:
    """The admin logins of a platform's databases; where a Secret could not be read, the
    reason instead (every probe of that database then fails with it)."""

    clickhouse: Login | str
    postgres: Login | str

    def of(self, component: Component) -> Login | str:
        return self.postgres if component is Component.POSTGRES else self.clickhouse


# -- pure helpers ------------------------------------------------------------------------------


def login_from(
    data: Mapping[str, str] | None, user_key: str, default_user: str, password_key: str, secret: str
) -> Login | str:
    """The login in a credentials Secret's data, or why there is none."""
    if data is None:
        return f"credentials Secret {secret} not found"
    password = data.get(password_key)
    if not password:
        return f"credentials Secret {secret} has no {password_key}"
    return Login(data.get(user_key) or default_user, SecretStr(password))


def server_url(
    names: Names, pod: str, component: Component, login: Login | str, override: str | None = None
) -> DatabaseURL:
    """Where and as whom to probe `pod`: its headless Service name, or `override` (with the
    platform's login where the override names none; chDB needs none). ValueError when a login
    is needed and there is none (`login` is then the reason)."""
    url = parse_url(override) if override is not None else None
    if url is not None and (url.scheme is Scheme.CHDB or url.user is not None):
        return url
    if isinstance(login, str):
        raise ValueError(login)
    if url is not None:
        return url.model_copy(update={"user": login.user, "password": login.password})
    if component is Component.POSTGRES:
        return DatabaseURL(
            scheme=Scheme.POSTGRESQL,
            host=names.fqdn(pod, names.postgres_headless),
            port=postgres.PORT,
            user=login.user,
            password=login.password,
            database="postgres",
        )
    return DatabaseURL(
        scheme=Scheme.CLICKHOUSE,
        host=names.fqdn(pod, names.clickhouse_headless),
        port=clickhouse.HTTP_PORT,
        user=login.user,
        password=login.password,
    )


def probed_pods(pods: Sequence[Manifest]) -> list[Manifest]:
    """The database pods worth probing: ClickHouse and PostgreSQL, not being deleted, with an
    address (a pod still unscheduled has nothing to answer)."""
    found = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if not has_component(pod) or component_of(pod) not in PROBED:
            continue
        if meta.get("deletionTimestamp") is None and status.get("podIP"):
            found.append(pod)
    return sorted(found, key=lambda p: p["metadata"]["name"])


def override_of(urls: Mapping[str, str], names: Names, pod: str) -> str | None:
    """Where `ProbeSettings.urls` sends `pod`: by `namespace/pod`, else by the pod's name."""
    return urls.get(f"{names.namespace}/{pod}", urls.get(pod))


def postgres_login(data: Mapping[str, str] | None, names: Names) -> Login | str:
    """The PostgreSQL superuser from the platform's credentials Secret (its data), or why not."""
    return login_from(
        data,
        "superuser",
        postgres.SUPERUSER,
        postgres.SUPERUSER_PASSWORD_KEY,
        names.postgres_credentials,
    )


def plan_targets(
    names: Names,
    pods: Sequence[Manifest],
    credentials: Credentials,
    urls: Mapping[str, str],
    *,
    wal_spool: str | None = None,
) -> tuple[list[ProbeTarget], list[ServerReading]]:
    """The servers to probe, and the readings already known to fail (no credentials, or an
    override URL that does not parse). `wal_spool`: the spool PostgreSQL servers are asked
    about (the platform archives its WAL)."""
    targets: list[ProbeTarget] = []
    failed: list[ServerReading] = []
    for pod in probed_pods(pods):
        name, component = pod["metadata"]["name"], component_of(pod)
        address = (pod.get("status") or {}).get("podIP")
        try:
            url = server_url(
                names, name, component, credentials.of(component), override_of(urls, names, name)
            )
        except (ValueError, InvalidURLError) as e:  # whose message hides the password
            failed.append(
                ServerReading(pod=name, component=component, address=address, error=clip(str(e)))
            )
            continue
        spool = wal_spool if component is Component.POSTGRES else None
        targets.append(
            ProbeTarget(pod=name, component=component, url=url, address=address, wal_spool=spool)
        )
    return targets, failed


def identity(pods: Sequence[Manifest]) -> frozenset[tuple[str, str, str]]:
    """What must stay the same for earlier readings to still describe the servers."""
    return frozenset(
        (
            p["metadata"]["name"],
            str(p["metadata"].get("uid", "")),
            str((p.get("status") or {}).get("podIP", "")),
        )
        for p in probed_pods(pods)
    )


@dataclass(frozen=True)
class Crash:
    """A container's last run that ended, identified by the run (restart count)."""

    pod: str
    uid: str
    container: str
    restart_count: int


def crashed_containers(pods: Sequence[Manifest], now: datetime, window: timedelta) -> list[Crash]:
    """Containers of database pods whose previous run terminated and matters now: the
    container is not Ready, or that run ended within `window`. Most recent first."""
    found: list[tuple[datetime, Crash]] = []
    for pod in pods:
        if not has_component(pod):
            continue
        meta = pod.get("metadata") or {}
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("lastState") or {}).get("terminated")
            restarts = int(status.get("restartCount") or 0)
            if restarts <= 0 or not terminated:
                continue
            finished = _time(terminated.get("finishedAt"))
            recent = finished is not None and now - finished <= window
            if status.get("ready") and not recent:
                continue
            crash = Crash(meta["name"], str(meta.get("uid", "")), status["name"], restarts)
            found.append((finished or now, crash))
    found.sort(key=lambda item: (item[0], item[1].pod, item[1].container), reverse=True)
    return [crash for _, crash in found]


def log_excerpt(pod: str, container: str, text: str, lines: int) -> LogExcerpt:
    """The last `lines` non-empty lines of `text`, each without credentials and clipped."""
    kept = [clip(redact(line)) for line in text.splitlines() if line.strip()]
    return LogExcerpt(pod=pod, container=container, lines=kept[-lines:] if lines else [])


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# The servers (identity) and the spool asked about, when readings were taken.
_Seen = tuple[frozenset[tuple[str, str, str]], str | None]


# -- I/O -----------------------------------------------------------------------------------------


class DatabaseProbes:
    """Probes for every platform of one operator; keeps each platform's last readings and the
    log of each crashed run it has read."""

    def __init__(
        self,
        kube: Kube,
        settings: ProbeSettings | None = None,
        cluster_domain: str = "cluster.local",
    ) -> None:
        self.kube = kube
        self.settings = settings or ProbeSettings()
        self.cluster_domain = cluster_domain
        self._readings: dict[str, tuple[float, _Seen, ProbeReadings]] = {}
        self._logs: dict[str, dict[Crash, LogExcerpt | None]] = {}

    async def observe(self, platform: DataPlatform, pods: Sequence[Manifest]) -> ProbeReadings:
        """The readings and crash logs of `platform`, whose pods (as listed, label-filtered to
        the platform) are `pods`. Never raises for a database or a log that fails."""
        if not self.settings.enabled:
            return ProbeReadings()
        namespace = platform.metadata.namespace or "default"
        names = Names(platform.metadata.name, namespace, self.cluster_domain)
        # Without spec.backup there is no sidecar: a spool left from before is not a backlog.
        spool = SPOOL_FROM_PGDATA if platform.spec.backup is not None else None
        databases, logs = await asyncio.gather(
            self.databases(names, pods, wal_spool=spool), self.logs(names, pods, datetime.now(UTC))
        )
        return databases.model_copy(update={"logs": logs})

    def forget(self, namespace: str, name: str) -> None:
        """The platform is gone: its readings and logs with it."""
        key = f"{namespace}/{name}"
        self._readings.pop(key, None)
        self._logs.pop(key, None)

    async def databases(
        self, names: Names, pods: Sequence[Manifest], *, wal_spool: str | None = None
    ) -> ProbeReadings:
        key = f"{names.namespace}/{names.platform}"
        servers = identity(pods)
        # Turning archiving on or off is a change of what to read, as a new pod is.
        same = (servers, wal_spool)
        kept = self._readings.get(key)
        now = time.monotonic()
        if kept and kept[1] == same and now - kept[0] < self.settings.interval_seconds:
            return kept[2]
        if not servers:
            readings = ProbeReadings()
        else:
            credentials = await self.credentials(names, pods)
            targets, failed = plan_targets(
                names, pods, credentials, self.settings.urls, wal_spool=wal_spool
            )
            answered = await probe_each(
                targets,
                timeout=self.settings.timeout_seconds,
                concurrency=self.settings.concurrency,
            )
            readings = readings_of([*failed, *answered])
        self._readings[key] = (now, same, readings)
        return readings

    async def credentials(self, names: Names, pods: Sequence[Manifest]) -> Credentials:
        components = {component_of(p) for p in probed_pods(pods)}
        ch, pg = await asyncio.gather(
            self._secret(
                names.clickhouse_credentials, names.namespace, Component.CLICKHOUSE in components
            ),
            self._secret(
                names.postgres_credentials, names.namespace, Component.POSTGRES in components
            ),
        )
        return Credentials(
            clickhouse=login_from(
                ch,
                "admin-user",
                clickhouse.ADMIN_USER,
                clickhouse.ADMIN_PASSWORD_KEY,
                names.clickhouse_credentials,
            ),
            postgres=postgres_login(pg, names),
        )

    async def postgres_url(self, names: Names, pod: str) -> DatabaseURL:
        """Where, and as the superuser, to reach PostgreSQL pod `pod` (an override in
        `settings.urls` included); ValueError or InvalidURLError, with the reason (never the
        password), when there is no login or the override does not parse."""
        data = await self._secret(names.postgres_credentials, names.namespace, True)
        override = override_of(self.settings.urls, names, pod)
        return server_url(names, pod, Component.POSTGRES, postgres_login(data, names), override)

    async def clickhouse_urls(self, names: Names, pods: Sequence[str]) -> dict[str, DatabaseURL]:
        """Where, and as the admin user, to reach each ClickHouse pod of `pods` (overrides in
        `settings.urls` included); ValueError or InvalidURLError, with the reason (never the
        password), when there is no login or an override does not parse."""
        data = await self._secret(names.clickhouse_credentials, names.namespace, True)
        login = login_from(
            data, "admin-user", clickhouse.ADMIN_USER, clickhouse.ADMIN_PASSWORD_KEY,
            names.clickhouse_credentials,
        )  # fmt: skip
        return {
            pod: server_url(
                names, pod, Component.CLICKHOUSE, login, override_of(self.settings.urls, names, pod)
            )
            for pod in pods
        }

    async def _secret(self, name: str, namespace: str, needed: bool) -> dict[str, str] | None:
        if not needed:
            return None
        try:
            return await self.kube.secret_data(name, namespace)
        except KubeError as e:
            log.warning("cannot read Secret %s/%s: %s %s", namespace, name, e.code, e.reason)
            return None

    async def logs(self, names: Names, pods: Sequence[Manifest], now: datetime) -> list[LogExcerpt]:
        settings = self.settings
        if settings.log_lines == 0 or settings.max_logs == 0:
            return []
        window = timedelta(seconds=settings.log_window_seconds)
        crashes = crashed_containers(pods, now, window)
        known = self._logs.get(f"{names.namespace}/{names.platform}", {})
        # Runs no longer current are forgotten; a run's log is read once, even when that failed.
        seen = {c: known[c] for c in crashes if c in known}
        todo = [c for c in crashes if c not in seen][: settings.max_logs]
        read = await asyncio.gather(*(self._read(names.namespace, c) for c in todo))
        seen.update(zip(todo, read, strict=True))
        self._logs[f"{names.namespace}/{names.platform}"] = seen
        return [excerpt for c in crashes if (excerpt := seen.get(c)) is not None]

    async def _read(self, namespace: str, crash: Crash) -> LogExcerpt | None:
        settings = self.settings
        try:
            async with asyncio.timeout(settings.timeout_seconds):
                text = await self.kube.pod_log(
                    crash.pod,
                    namespace,
                    crash.container,
                    previous=True,
                    tail_lines=settings.log_lines,
                    # Generous for the lines asked; a pathological line is clipped anyway.
                    limit_bytes=settings.log_lines * 4096,
                    timeout=settings.timeout_seconds,
                )
        except (KubeError, KubeUnreachableError, TimeoutError, OSError) as e:
            log.info("no previous log of %s/%s: %s", crash.pod, crash.container, clip(str(e)))
            return None
        return log_excerpt(crash.pod, crash.container, text, settings.log_lines)
