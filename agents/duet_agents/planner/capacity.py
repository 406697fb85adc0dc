"""The built-in planner: requirements in, the cheapest design that meets them out.

Pure and deterministic (no clock, no randomness, no I/O), so it is the offline default and the
fallback of the LLM planners. Each decision is one small function that returns its value and
the rationale line that explains it; a field the user pinned in the spec is kept as given.
Every constant below names the document it comes from; docs/planning.md explains the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Generic, TypeVar

from duet_agents.planner.errors import BudgetInfeasibleError
from duet_agents.planner.models import (
    Availability,
    ClickHouseDesign,
    KeeperDesign,
    KeeperPin,
    PlannerInfo,
    PlanRequest,
    PlatformDesign,
    PostgresDesign,
    PriceTable,
    Resources,
    ResourcesPin,
    Storage,
    StoragePin,
)
from duet_agents.units import GiB, TiB, format_bytes, format_cpu, parse_quantity

MiB = 2**20

# ClickHouse releases an LTS twice a year (x.3 and x.8), supported for a year.
DEFAULT_CLICKHOUSE_VERSION = "25.8"
# PostgreSQL's versioning policy supports a major version for five years (17: to Nov 2029).
DEFAULT_POSTGRES_VERSION = "17"

# -- shards --------------------------------------------------------------------------------------
# Compressed data one shard holds. Re-syncing a lost replica copies the whole shard from a peer
# (ClickHouse "Usage recommendations", Network: 1 Gbit is "much worse for patching replicas with
# tens of terabytes"); at 2Ti that is well under an hour on 10 Gbit, and merges stay quick.
MAX_DATA_PER_SHARD = 2 * TiB
# Sustained insert rate one shard takes. ClickHouse "Performance" ("Why is ClickHouse so
# fast?"): batched inserts of ~1 KB rows run at 50,000-200,000 rows/s per server.
MAX_INGEST_ROWS_PER_SHARD = 200_000
# ClickHouseDesign.shards' upper bound.
MAX_SHARDS = 256

# -- replicas ------------------------------------------------------------------------------------
# "Sizing and hardware recommendations", Replicas: at least two replicas per shard on network
# block storage (three on local disks). Standard availability runs one and relies on the volume.
REPLICAS_STANDARD = 1
REPLICAS_HIGH = 2

# -- storage -------------------------------------------------------------------------------------
# A merge writes its new part before it drops the old ones, so a disk needs free space the size
# of its largest merge (MergeTree `max_bytes_to_merge_at_max_space_in_pool`, 150 GB by default);
# keeping disks at most 75% full leaves that room and time to expand the volume.
DISK_FILL_LIMIT = Decimal("0.75")
MIN_STORAGE = 10 * GiB

# -- cpu -----------------------------------------------------------------------------------------
# A dashboard query reads its time range (about a day) of the columns it names, pruned by the
# primary index: we assume 2% of one day's compressed data per shard.
QUERY_SCAN_FRACTION_OF_DAY = Decimal("0.02")
# ClickHouse "Performance": 2-10 GB/s of uncompressed data per server for a simple query over
# cached data; we take 1 GiB/s per core and 4x compression: 256 MiB/s of compressed data.
CORE_SCAN_BYTES_PER_SECOND = 256 * MiB
# Parsing, compressing and later merging inserted rows: one core per 50,000 rows/s, the low end
# of the "Performance" page's 50,000-200,000 rows/s for one insert stream.
INSERT_ROWS_PER_CORE = 50_000
# Fewer than 2 cores starve background merges; 64 is the largest common general-purpose node.
MIN_CPU = 2
MAX_CPU = 64

# -- memory --------------------------------------------------------------------------------------
# "Sizing and hardware recommendations", How many CPU cores: 4:1 memory to core for general use,
# 8:1 (memory-optimised) where queries must be fast; "Memory to storage ratio": 1:100 for long
# retention, 1:30-1:50 for frequent low-latency access, and never below 8 GB of memory.
MEMORY_PER_CORE = 4 * GiB
MEMORY_PER_CORE_LOW_LATENCY = 8 * GiB
DATA_PER_MEMORY = 100
DATA_PER_MEMORY_LOW_LATENCY = 50
LOW_LATENCY_SECONDS = Decimal("0.5")
MIN_MEMORY = 8 * GiB
MAX_MEMORY = 512 * GiB

# -- keeper --------------------------------------------------------------------------------------
# ClickHouse Keeper (Raft) coordinates replication and distributed DDL; three nodes keep a
# majority through one failure. It holds only metadata, but is sensitive to disk latency
# ("Usage recommendations": its own disk), so it gets small, fixed pods.
KEEPER_QUORUM = 3
KEEPER_CPU = 1
KEEPER_MEMORY = 2 * GiB
KEEPER_STORAGE = 10 * GiB

# -- postgres (metadata) -------------------------------------------------------------------------
# PostgreSQL "High Availability, Load Balancing, and Replication": a primary plus a streaming
# replica (hot standby) for high availability. Metadata is small; 2Gi lets shared_buffers take
# the 25% of memory "Resource Consumption" suggests as a start.
POSTGRES_INSTANCES_STANDARD = 1
POSTGRES_INSTANCES_HIGH = 2
POSTGRES_CPU = 1
POSTGRES_MEMORY = 2 * GiB
POSTGRES_STORAGE = 20 * GiB

Q = TypeVar("Q", int, str)
T = TypeVar("T")


@dataclass(frozen=True)
class Decision(Generic[T]):
    """One figure of the design and the rationale lines that explain it (warnings last)."""

    value: T
    lines: tuple[str, ...]


def plan(request: PlanRequest, prices: PriceTable | None = None) -> PlatformDesign:
    """The cheapest design that meets `request` and keeps its pins.

    Raises BudgetInfeasibleError when the design costs more than `request.budget`.
    """
    if prices is None:
        prices = PriceTable()
    clickhouse, ch_lines = _clickhouse(request)
    postgres, pg_lines = _postgres(request)
    cost = monthly_cost_usd(clickhouse, postgres, prices)
    lines = [*ch_lines, *pg_lines, _cost_line(clickhouse, postgres, prices, cost)]
    if request.budget is not None:
        if cost > request.budget.monthly_usd:
            raise BudgetInfeasibleError(
                minimum_monthly_usd=cost, budget_monthly_usd=request.budget.monthly_usd
            )
        lines.append(f"budget: ${cost:,.2f}/month is within ${request.budget.monthly_usd:,.2f}")
    return PlatformDesign(
        clickhouse=clickhouse,
        postgres=postgres,
        estimated_monthly_cost_usd=cost,
        rationale=lines,
        planner=PlannerInfo(provider="builtin", model=None),
    )


def monthly_cost_usd(
    clickhouse: ClickHouseDesign, postgres: PostgresDesign, prices: PriceTable
) -> float:
    """What the pods of a design cost a month, rounded to cents: every ClickHouse pod (shards x
    replicas), Keeper pod and PostgreSQL instance pays for its cores, memory and storage."""
    total = sum(_component_costs(clickhouse, postgres, prices), Decimal(0))
    return float(total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# -- ClickHouse ----------------------------------------------------------------------------------


def _clickhouse(request: PlanRequest) -> tuple[ClickHouseDesign, list[str]]:
    req, pin = request.requirements, request.clickhouse
    # Requirements refuses a latency of 0s, so this divides safely.
    latency = req.latency_seconds
    version = _version("clickhouse version", pin.version, DEFAULT_CLICKHOUSE_VERSION)
    shards = decide_shards(req.data_bytes, req.ingest_rows_per_second, pin.shards)
    replicas = decide_replicas(req.availability, pin.replicas)
    data_per_shard = -(-req.data_bytes // shards.value)
    storage_pin = pin.storage or StoragePin()
    storage = decide_storage(data_per_shard, storage_pin.size)
    resources_pin = pin.resources or ResourcesPin()
    cpu = decide_cpu(
        data_per_shard=data_per_shard,
        retention_days=req.retention_days,
        concurrent_queries=req.concurrent_queries,
        latency_seconds=latency,
        ingest_rows_per_shard=-(-req.ingest_rows_per_second // shards.value),
        replicas=replicas.value,
        pin=resources_pin.cpu,
    )
    memory = decide_memory(parse_quantity(cpu.value), data_per_shard, latency, resources_pin.memory)
    keeper, keeper_lines = _keeper(request, shards.value, replicas.value)
    design = ClickHouseDesign(
        version=version.value,
        shards=shards.value,
        replicas=replicas.value,
        resources=Resources(cpu=cpu.value, memory=memory.value),
        storage=Storage(size=storage.value, storage_class=storage_pin.storage_class),
        keeper=keeper,
    )
    lines = [
        *version.lines,
        *shards.lines,
        *replicas.lines,
        *storage.lines,
        *_storage_class_lines("clickhouse", storage_pin),
        *cpu.lines,
        *memory.lines,
        *keeper_lines,
    ]
    return design, lines


def decide_shards(data_bytes: int, ingest_rows_per_second: int, pin: int | None) -> Decision[int]:
    """Enough shards that none holds more than 2Ti or takes more than 200,000 rows/s."""
    by_data = max(1, -(-data_bytes // MAX_DATA_PER_SHARD))
    by_ingest = max(1, -(-ingest_rows_per_second // MAX_INGEST_ROWS_PER_SHARD))
    need = max(by_data, by_ingest)
    why = (
        f"{_size(data_bytes)} of data at most {_size(MAX_DATA_PER_SHARD)} per shard ({by_data}); "
        f"{ingest_rows_per_second} rows/s at most {MAX_INGEST_ROWS_PER_SHARD} per shard "
        f"({by_ingest})"
    )
    if pin is None and need > MAX_SHARDS:
        capped = Decision(MAX_SHARDS, (f"shards: {MAX_SHARDS} — {why}",))
        return _warn(
            capped,
            f"shards capped at {MAX_SHARDS}, below the {need} needed: each "
            "shard holds or ingests more than the limits above",
        )
    return _settle("shards", "spec.clickhouse.shards", pin, need, why)


def decide_replicas(availability: Availability, pin: int | None) -> Decision[int]:
    """One replica for standard availability, two (a shard survives losing one) for high."""
    if availability is Availability.HIGH:
        need, why = REPLICAS_HIGH, "availability high: each shard survives the loss of a replica"
    else:
        need, why = REPLICAS_STANDARD, "availability standard: the volume keeps the data"
    return _settle("replicas", "spec.clickhouse.replicas", pin, need, why)


def decide_storage(data_per_shard: int, pin: str | None) -> Decision[str]:
    """The shard's data at most 75% full (room for merges), a whole number of GiB, >= 10Gi."""
    need = max(MIN_STORAGE, _ceil(data_per_shard / DISK_FILL_LIMIT / GiB) * GiB)
    why = (
        f"{_size(data_per_shard)} per shard at most {DISK_FILL_LIMIT:.0%} full, "
        f"at least {_size(MIN_STORAGE)}"
    )
    return _settle(
        "storage per replica", "spec.clickhouse.storage.size", pin, format_bytes(need), why
    )


def decide_cpu(
    *,
    data_per_shard: int,
    retention_days: int,
    concurrent_queries: int,
    latency_seconds: Decimal,
    ingest_rows_per_shard: int,
    replicas: int,
    pin: str | None,
) -> Decision[str]:
    """Cores to scan what the concurrent queries read within the latency target, plus inserts.

    Each query fans out to one replica of every shard, so a replica serves its share of the
    concurrent queries; each reads 2% of a day's data of its shard at 256 MiB/s per core.
    """
    per_replica = -(-concurrent_queries // replicas)
    scan = Decimal(data_per_shard) / retention_days * QUERY_SCAN_FRACTION_OF_DAY
    query_cores = per_replica * scan / CORE_SCAN_BYTES_PER_SECOND / latency_seconds
    insert_cores = Decimal(ingest_rows_per_shard) / INSERT_ROWS_PER_CORE
    wanted = _ceil(query_cores + insert_cores)
    need = min(MAX_CPU, max(MIN_CPU, wanted))
    why = (
        f"{per_replica} queries per replica each reading {_size(scan)} within "
        f"{_seconds(latency_seconds)} at {_size(CORE_SCAN_BYTES_PER_SECOND)}/s per core "
        f"({query_cores:.1f} cores), plus {ingest_rows_per_shard} rows/s of inserts per shard "
        f"at {INSERT_ROWS_PER_CORE} per core ({insert_cores:.1f}); between {MIN_CPU} and {MAX_CPU}"
    )
    decision = _settle("cpu per replica", "spec.clickhouse.resources.cpu", pin, str(need), why)
    if pin is None and wanted > MAX_CPU:
        return _warn(
            decision,
            f"cpu per replica capped at {MAX_CPU} cores, below the {wanted} "
            "the latency target needs at this concurrency: it may not hold",
        )
    return decision


def decide_memory(
    cores: Decimal, data_per_shard: int, latency_seconds: Decimal, pin: str | None
) -> Decision[str]:
    """Memory per core (4Gi, 8Gi for low latency), at least 1/100 (1/50) of the shard's data."""
    fast = latency_seconds <= LOW_LATENCY_SECONDS
    per_core = MEMORY_PER_CORE_LOW_LATENCY if fast else MEMORY_PER_CORE
    data_ratio = DATA_PER_MEMORY_LOW_LATENCY if fast else DATA_PER_MEMORY
    by_cores = cores * per_core
    by_data = Decimal(data_per_shard) / data_ratio
    wanted = _ceil(max(by_cores, by_data) / GiB) * GiB
    need = min(MAX_MEMORY, max(MIN_MEMORY, wanted))
    why = (
        f"{_size(per_core)} per core x {cores.normalize():f} cores "
        f"({'latency target <= ' + _seconds(LOW_LATENCY_SECONDS) if fast else 'general purpose'})"
        f", at least 1/{data_ratio} of {_size(data_per_shard)} per shard; "
        f"between {_size(MIN_MEMORY)} and {_size(MAX_MEMORY)}"
    )
    decision = _settle(
        "memory per replica", "spec.clickhouse.resources.memory", pin, format_bytes(need), why
    )
    if pin is None and wanted > MAX_MEMORY:
        return _warn(
            decision,
            f"memory per replica capped at {_size(MAX_MEMORY)}, below the "
            f"{_size(wanted)} the rules give",
        )
    return decision


def _keeper(request: PlanRequest, shards: int, replicas: int) -> tuple[KeeperDesign, list[str]]:
    pin = request.clickhouse.keeper
    if pin is None:
        pin = KeeperPin()
    if replicas > 1:
        need, why = KEEPER_QUORUM, "replicated shards: a Raft quorum that survives one failure"
    elif shards > 1:
        need, why = 1, f"{shards} shards of one replica: distributed DDL needs a coordinator"
    else:
        need, why = 0, "a single node needs no coordination"
    count = _settle("keeper replicas", "spec.clickhouse.keeper.replicas", pin.replicas, need, why)
    resources, storage, pod_line = _fixed_pod(
        "keeper",
        "spec.clickhouse.keeper",
        resources_pin=pin.resources,
        storage_pin=pin.storage,
        defaults=(KEEPER_CPU, KEEPER_MEMORY, KEEPER_STORAGE),
        why="small and fixed: Keeper holds only coordination metadata",
    )
    design = KeeperDesign(replicas=count.value, resources=resources, storage=storage)
    return design, [*count.lines, pod_line, *_storage_class_lines("keeper", pin.storage)]


# -- PostgreSQL ----------------------------------------------------------------------------------


def _postgres(request: PlanRequest) -> tuple[PostgresDesign, list[str]]:
    pin = request.postgres
    version = _version("postgres version", pin.version, DEFAULT_POSTGRES_VERSION)
    instances = decide_postgres_instances(
        request.requirements.availability, enabled=pin.enabled, pin=pin.instances
    )
    resources, storage, pod_line = _fixed_pod(
        "postgres",
        "spec.postgres",
        resources_pin=pin.resources,
        storage_pin=pin.storage,
        defaults=(POSTGRES_CPU, POSTGRES_MEMORY, POSTGRES_STORAGE),
        why="small and fixed: PostgreSQL holds only metadata",
    )
    design = PostgresDesign(
        enabled=pin.enabled,
        version=version.value,
        instances=instances.value,
        resources=resources,
        storage=storage,
    )
    lines = [
        *version.lines,
        *instances.lines,
        pod_line,
        *_storage_class_lines("postgres", pin.storage),
    ]
    return design, lines


def decide_postgres_instances(
    availability: Availability, *, enabled: bool, pin: int | None
) -> Decision[int]:
    """0 when disabled; one for standard availability; primary + streaming replica for high."""
    if not enabled:
        lines = ["postgres instances: 0 — disabled (spec.postgres.enabled: false)"]
        if pin is not None:
            lines.append(
                f"warning: postgres instances pinned to {pin} (spec.postgres.instances) "
                "but PostgreSQL is disabled: none run"
            )
        return Decision(0, tuple(lines))
    if availability is Availability.HIGH:
        need, why = POSTGRES_INSTANCES_HIGH, "availability high: primary + streaming replica"
    else:
        need, why = POSTGRES_INSTANCES_STANDARD, "availability standard: one instance"
    return _settle("postgres instances", "spec.postgres.instances", pin, need, why)


# -- cost ----------------------------------------------------------------------------------------


def _pod_cost(resources: Resources, storage: Storage, prices: PriceTable) -> Decimal:
    cores = parse_quantity(resources.cpu)
    memory_gib = parse_quantity(resources.memory) / GiB
    storage_gib = parse_quantity(storage.size) / GiB
    return (
        cores * Decimal(str(prices.cpu_core_month_usd))
        + memory_gib * Decimal(str(prices.memory_gib_month_usd))
        + storage_gib * Decimal(str(prices.storage_gib_month_usd))
    )


def _component_costs(
    clickhouse: ClickHouseDesign, postgres: PostgresDesign, prices: PriceTable
) -> tuple[Decimal, Decimal, Decimal]:
    """Monthly cost of the ClickHouse pods, the Keeper pods and the PostgreSQL instances."""
    keeper = clickhouse.keeper
    return (
        clickhouse.shards
        * clickhouse.replicas
        * _pod_cost(clickhouse.resources, clickhouse.storage, prices),
        keeper.replicas * _pod_cost(keeper.resources, keeper.storage, prices),
        postgres.instances * _pod_cost(postgres.resources, postgres.storage, prices),
    )


def _cost_line(
    clickhouse: ClickHouseDesign, postgres: PostgresDesign, prices: PriceTable, total: float
) -> str:
    ch, keeper, pg = _component_costs(clickhouse, postgres, prices)
    pods = clickhouse.shards * clickhouse.replicas
    return (
        f"cost: ${total:,.2f}/month — ClickHouse {_pods(pods)} ${ch:,.2f}, "
        f"Keeper {_pods(clickhouse.keeper.replicas)} ${keeper:,.2f}, "
        f"PostgreSQL {_pods(postgres.instances)} ${pg:,.2f}; at "
        f"${prices.cpu_core_month_usd:g}/core, ${prices.memory_gib_month_usd:g}/GiB memory, "
        f"${prices.storage_gib_month_usd:g}/GiB storage a month"
    )


# -- helpers -------------------------------------------------------------------------------------


def _settle(label: str, path: str, pin: Q | None, need: Q, why: str) -> Decision[Q]:
    """The computed value, or the pin with what the rules would give and, if it undercuts the
    requirements, a warning."""
    if pin is None:
        return Decision(need, (f"{label}: {need} — {why}",))
    lines = [f"{label}: {pin} — pinned ({path}; the rules give {need})"]
    if parse_quantity(pin) < parse_quantity(need):
        lines.append(f"warning: {label} pinned to {pin}, below the {need} needed: {why}")
    return Decision(pin, tuple(lines))


def _warn(decision: Decision[T], warning: str) -> Decision[T]:
    return Decision(decision.value, (*decision.lines, f"warning: {warning}"))


def _version(label: str, pin: str | None, default: str) -> Decision[str]:
    if pin is None:
        return Decision(default, (f"{label}: {default} — the default, a supported release",))
    return Decision(pin, (f"{label}: {pin} — pinned",))


def _fixed_pod(
    component: str,
    path: str,
    *,
    resources_pin: ResourcesPin | None,
    storage_pin: StoragePin | None,
    defaults: tuple[int, int, int],
    why: str,
) -> tuple[Resources, Storage, str]:
    """Fixed pod sizes (Keeper, PostgreSQL), each field overridden by its pin."""
    cpu_default, memory_default, storage_default = defaults
    resources_pin = resources_pin or ResourcesPin()
    storage_pin = storage_pin or StoragePin()
    cpu = resources_pin.cpu or format_cpu(cpu_default)
    memory = resources_pin.memory or format_bytes(memory_default)
    size = storage_pin.size or format_bytes(storage_default)
    pinned = [
        f"{path}.{field}"
        for field, value in (
            ("resources.cpu", resources_pin.cpu),
            ("resources.memory", resources_pin.memory),
            ("storage.size", storage_pin.size),
        )
        if value is not None
    ]
    note = f"; pinned: {', '.join(pinned)}" if pinned else ""
    line = f"{component} pod: {cpu} cpu, {memory} memory, {size} storage — {why}{note}"
    resources = Resources(cpu=cpu, memory=memory)
    return resources, Storage(size=size, storage_class=storage_pin.storage_class), line


def _storage_class_lines(component: str, pin: StoragePin | None) -> tuple[str, ...]:
    if pin is None or pin.storage_class is None:
        return ()
    return (f"{component} storage class: {pin.storage_class} — pinned",)


def _pods(count: int) -> str:
    return f"{count} pod" if count == 1 else f"{count} pods"


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _size(amount: int | Decimal) -> str:
    """Bytes for a person: exact units when they fit (`2Ti`), else one decimal (`11.4Gi`)."""
    value = Decimal(amount)
    if value == value.to_integral_value() and format_bytes(int(value))[-1] == "i":
        return format_bytes(int(value))
    for suffix, unit in (("Ti", TiB), ("Gi", GiB), ("Mi", MiB)):
        if value >= unit:
            return f"{value / unit:.1f}{suffix}"
    return f"{math.ceil(value)}B"


def _seconds(value: Decimal) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value.normalize():f}s"
