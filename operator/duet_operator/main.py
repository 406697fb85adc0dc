"""Running the operator: kopf's settings, the API client, the HTTP endpoints, the handlers."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import kopf

from duet_operator import http
from duet_operator.backups import BackupRunner
from duet_operator.handlers import background, backup, dataplatform, healing, queryagent
from duet_operator.healing import Healer, HealSettings
from duet_operator.kube.client import Kube
from duet_operator.models import GROUP
from duet_operator.platform_memory import PlatformMemory
from duet_operator.query_agents import QueryAgentReconciler
from duet_operator.reconcile import Reconciler
from duet_operator.render.naming import MANAGED_BY_DUET
from duet_operator.settings import OperatorSettings

log = logging.getLogger("duet.operator")


# The kinds of object Duet makes that its handlers watch (handlers/*.py register them).
CHILD_RESOURCES = (
    ("", "v1", "pods"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "deployments"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("batch", "v1", "jobs"),
)


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Progress and the last-handled spec in annotations of our own prefix: status is typed
    # and ours alone, and kopf's default `status.kopf` would be pruned by the schema.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events are ours, one per condition transition; kopf posts none for log lines.
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    # Only Duet's own children are sent to it: without a selector on the server, every pod,
    # Secret and ConfigMap of the watched namespaces would be sent, parsed and queued, for
    # the handlers' label filters to drop on this side.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = MANAGED_BY_DUET
    # kopf keeps a worker task per object that had an event, holding that event's whole body,
    # until no event has come for idle_timeout (5 s by default). A new platform's children
    # and pods all change within seconds of each other, so in a burst of new platforms
    # thousands of workers wait at once. An idle worker keeps nothing the next event needs (it
    # waits longer anyway while its own patch is not yet seen): one that exits early costs
    # only a task to start the next. 200 platforms created at once: peak RSS 181 MB with
    # 5 s, 175 with 2 s, 168 with 0.5 s, 168 with 0.1 s.
    settings.queueing.idle_timeout = 0.5
    # Watches end and restart within a few minutes, so a stuck connection heals itself.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def build_registry(config: OperatorSettings, kubeconfig: str | None) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings)
        memo.locks = {}
        memo.refresh_waiting = set()
        memo.workers = asyncio.Semaphore(config.max_concurrent_reconciles)
        memo.ready = False
        kube = await Kube.connect(kubeconfig)
        # Opened once, off the loop (it creates or migrates its schema). A store that cannot
        # be opened is said once and the operator runs without memory.
        memo.memory = await PlatformMemory.start(config.memory)
        memo.reconciler = Reconciler(kube, config, memo.memory)
        memo.query_agents = QueryAgentReconciler(kube, config)
        memo.backups = BackupRunner(kube, config)
        memo.healer = Healer(kube, memo.reconciler, HealSettings(), memory=memo.memory)
        if config.metrics_port:
            memo.http = await http.serve(config.metrics_port, lambda: bool(memo.ready))
        memo.ready = True
        log.info("duet operator started; metrics on :%s", config.metrics_port)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await background.stop(memo)
        if getattr(memo, "http", None) is not None:
            await memo.http.cleanup()
        if getattr(memo, "reconciler", None) is not None:
            await memo.reconciler.kube.close()
        if getattr(memo, "memory", None) is not None:
            await asyncio.to_thread(memo.memory.close)

    dataplatform.register(registry, config.resync_seconds)
    queryagent.register(registry, config.resync_seconds)
    healing.register(registry, HealSettings())
    backup.register(registry)
    return registry


def run(config: OperatorSettings, kubeconfig: str | None = None) -> None:
    """Run until interrupted: all namespaces, or those in config.namespaces."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # kopf reports every handler run at INFO; our own log says what changed, once.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # A database probe that gets no answer says so in the Observation (ProbesReachable); the
    # client libraries would also log each failed attempt, every probe interval.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # httpx2 logs every request at INFO: each apply and read of kube/client.py (and of the
    # model SDKs), thousands a minute in a burst, and none of it news.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on some platforms

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    kopf.run(
        loop=loop,
        registry=build_registry(config, kubeconfig),
        # Replicas of equal priority pause each other; a random one per process lets exactly
        # one work while the others watch its keep-alives and take over when they stop.
        standalone=config.peering_name is None,
        peering_name=config.peering_name,
        priority=secrets.randbelow(2**31 - 1) + 1,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        memo=kopf.Memo(),
    )
