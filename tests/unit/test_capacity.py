"""The built-in planner: each sizing rule, pins, cost and budget, with figures worked by hand."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from duet_agents.planner.capacity import (
    DEFAULT_CLICKHOUSE_VERSION,
    DEFAULT_POSTGRES_VERSION,
    MAX_CPU,
    MAX_MEMORY,
    MAX_SHARDS,
    MIN_CPU,
    MIN_MEMORY,
    MIN_STORAGE,
    monthly_cost_usd,
    plan,
)
from duet_agents.planner.errors import BudgetInfeasibleError
from duet_agents.planner.models import PlanRequest, PlatformDesign, PriceTable
from duet_agents.units import GiB, parse_quantity


def request(requirements: dict[str, Any] | None = None, **spec: Any) -> PlanRequest:
    """A PlanRequest as a user writes it: camelCase, 100Gi and the defaults unless told."""
    return PlanRequest.model_validate(
        {"requirements": {"dataVolume": "100Gi", **(requirements or {})}, **spec}
    )


def line(design: PlatformDesign, label: str) -> str:
    """The rationale line of one decision."""
    found = [text for text in design.rationale if text.startswith(f"{label}: ")]
    assert len(found) == 1, design.rationale
    return found[0]


def warnings(design: PlatformDesign) -> list[str]:
    return [text for text in design.rationale if text.startswith("warning:")]


# -- the rules ------------------------------------------------------------------------------------


def test_a_small_platform_is_one_node_and_costs_the_sum_of_its_pods() -> None:
    design = plan(request())
    ch = design.clickhouse
    assert (ch.shards, ch.replicas, ch.keeper.replicas) == (1, 1, 0)
    assert (ch.resources.cpu, ch.resources.memory, ch.storage.size) == ("2", "8Gi", "134Gi")
    assert ch.storage.storage_class is None
    assert ch.version == DEFAULT_CLICKHOUSE_VERSION == "25.8"
    pg = design.postgres
    assert (pg.enabled, pg.instances, pg.version) == (True, 1, DEFAULT_POSTGRES_VERSION)
    assert (pg.resources.cpu, pg.resources.memory, pg.storage.size) == ("1", "2Gi", "20Gi")
    # ClickHouse: 2 cores x $25 + 8 GiB x $3.3 + 134 GiB x $0.10 = 50 + 26.4 + 13.4 = 89.8
    # PostgreSQL: 1 core x $25 + 2 GiB x $3.3 + 20 GiB x $0.10 = 25 + 6.6 + 2.0 = 33.6
    assert design.estimated_monthly_cost_usd == 123.40
    assert design.planner.provider == "builtin"
    assert design.planner.model is None
    assert not warnings(design)


def test_every_decision_has_a_line_in_the_rationale() -> None:
    design = plan(request())
    for label in (
        "clickhouse version",
        "shards",
        "replicas",
        "storage per replica",
        "cpu per replica",
        "memory per replica",
        "keeper replicas",
        "keeper pod",
        "postgres version",
        "postgres instances",
        "postgres pod",
        "cost",
    ):
        assert line(design, label)
    assert "$123.40/month" in line(design, "cost")


@pytest.mark.parametrize(
    ("volume", "shards"),
    [("100Gi", 1), ("2Ti", 1), ("2049Gi", 2), ("6Ti", 3), ("10Ti", 5), ("100Ti", 50)],
)
def test_data_volume_drives_shards_at_2ti_each(volume: str, shards: int) -> None:
    design = plan(request({"dataVolume": volume}))
    assert design.clickhouse.shards == shards


def test_the_shard_line_shows_the_numbers_that_drove_it() -> None:
    design = plan(request({"dataVolume": "6Ti"}))
    assert line(design, "shards").startswith("shards: 3 — 6Ti of data at most 2Ti per shard (3)")


def test_ingest_drives_shards_at_200000_rows_per_second_each() -> None:
    design = plan(request({"ingestRowsPerSecond": 1_000_000}))
    assert design.clickhouse.shards == 5
    assert "1000000 rows/s at most 200000 per shard (5)" in line(design, "shards")
    # Several shards of one replica: one Keeper for distributed DDL.
    assert design.clickhouse.keeper.replicas == 1


def test_the_larger_of_data_and_ingest_wins() -> None:
    design = plan(request({"dataVolume": "10Ti", "ingestRowsPerSecond": 1_400_000}))
    assert design.clickhouse.shards == 7


def test_high_availability_replicates_clickhouse_keeper_and_postgres() -> None:
    design = plan(request({"availability": "high"}))
    assert design.clickhouse.replicas == 2
    assert design.clickhouse.keeper.replicas == 3
    assert design.postgres.instances == 2
    keeper = design.clickhouse.keeper
    assert (keeper.resources.cpu, keeper.resources.memory, keeper.storage.size) == (
        "1",
        "2Gi",
        "10Gi",
    )
    # 2 ClickHouse pods (2 x 89.8), 3 Keeper pods (25 + 6.6 + 1.0 each), 2 PostgreSQL (2 x 33.6)
    assert design.estimated_monthly_cost_usd == pytest.approx(2 * 89.8 + 3 * 32.6 + 2 * 33.6)


# A 2Ti, 180-day clickstream platform: 2% of a day's 11.4Gi is 233Mi per query, at 256Mi/s per
# core; so 20 queries in 1s need 18.2 cores, plus 1 for 50,000 rows/s of inserts.
BUSY = {
    "dataVolume": "2Ti",
    "retentionDays": 180,
    "ingestRowsPerSecond": 50_000,
    "concurrentQueries": 20,
    "queryLatencyP95": "1s",
}


def test_cpu_covers_the_queries_in_flight_and_the_inserts() -> None:
    design = plan(request(BUSY))
    assert design.clickhouse.resources.cpu == "20"
    assert "(18.2 cores)" in line(design, "cpu per replica")


@pytest.mark.parametrize(
    ("slower", "faster"),
    [
        ({"queryLatencyP95": "2s"}, {"queryLatencyP95": "1s"}),
        ({"queryLatencyP95": "1s"}, {"queryLatencyP95": "600ms"}),
        ({"concurrentQueries": 10}, {"concurrentQueries": 20}),
        ({"concurrentQueries": 20}, {"concurrentQueries": 40}),
        ({"retentionDays": 360}, {"retentionDays": 180}),
    ],
)
def test_lower_latency_or_more_concurrency_means_more_cpu(
    slower: dict[str, Any], faster: dict[str, Any]
) -> None:
    light = plan(request({**BUSY, **slower})).clickhouse.resources.cpu
    heavy = plan(request({**BUSY, **faster})).clickhouse.resources.cpu
    assert MIN_CPU < int(light) < int(heavy) < MAX_CPU


def test_replicas_share_the_concurrent_queries() -> None:
    standard = plan(request(BUSY)).clickhouse.resources.cpu
    high = plan(request({**BUSY, "availability": "high"})).clickhouse.resources.cpu
    # 10 queries per replica instead of 20: 9.1 + 1 cores.
    assert (standard, high) == ("20", "11")


def test_cpu_is_capped_with_a_warning_when_the_target_is_out_of_reach() -> None:
    design = plan(request({**BUSY, "queryLatencyP95": "100ms", "concurrentQueries": 100}))
    assert design.clickhouse.resources.cpu == str(MAX_CPU)
    assert any("cpu per replica capped at 64" in text for text in warnings(design))


@pytest.mark.parametrize(
    ("requirements", "cpu", "memory"),
    [
        ({}, "2", "8Gi"),  # 2 cores x 4Gi = 8Gi, the floor too
        (BUSY, "20", "80Gi"),  # 4Gi per core
        # 18.2 cores / 0.5s + 1 = 37.4 -> 38 cores; 500ms is low latency: 8Gi per core
        ({**BUSY, "queryLatencyP95": "500ms"}, "38", "304Gi"),
        ({**BUSY, "queryLatencyP95": "100ms", "concurrentQueries": 100}, "64", "512Gi"),  # cap
    ],
)
def test_memory_follows_the_ratio_within_bounds(
    requirements: dict[str, Any], cpu: str, memory: str
) -> None:
    resources = plan(request(requirements)).clickhouse.resources
    assert (resources.cpu, resources.memory) == (cpu, memory)


@pytest.mark.parametrize(
    ("pinned_cpu", "memory"), [("500m", "8Gi"), ("1", "8Gi"), ("10", "40Gi"), ("200", "512Gi")]
)
def test_memory_follows_a_pinned_cpu_within_bounds(pinned_cpu: str, memory: str) -> None:
    design = plan(request(clickhouse={"resources": {"cpu": pinned_cpu}}))
    assert design.clickhouse.resources.memory == memory
    assert MIN_MEMORY <= parse_quantity(memory) <= MAX_MEMORY


def test_memory_is_at_least_a_hundredth_of_the_shard() -> None:
    pins = {"shards": 1, "resources": {"cpu": "2"}}
    design = plan(request({"dataVolume": "10Ti"}, clickhouse=pins))
    # 10Ti / 100 = 102.4Gi, rounded up to whole GiB; 2 cores alone would give 8Gi.
    assert design.clickhouse.resources.memory == "103Gi"


def test_storage_keeps_disks_three_quarters_full_and_at_least_10gi() -> None:
    assert plan(request({"dataVolume": "3Gi"})).clickhouse.storage.size == "10Gi"
    assert plan(request({"dataVolume": "30Gi"})).clickhouse.storage.size == "40Gi"
    # 6Ti over 3 shards is 2Ti a shard: 2048Gi / 0.75 = 2730.7 -> 2731Gi
    assert plan(request({"dataVolume": "6Ti"})).clickhouse.storage.size == "2731Gi"


def test_postgres_disabled_runs_no_instances_and_costs_nothing() -> None:
    design = plan(request(postgres={"enabled": False}))
    assert (design.postgres.enabled, design.postgres.instances) == (False, 0)
    assert design.postgres.version == DEFAULT_POSTGRES_VERSION
    assert design.estimated_monthly_cost_usd == pytest.approx(89.8)
    assert "disabled" in line(design, "postgres instances")


def test_a_zero_latency_target_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match=r"requirements\.queryLatencyP95\n.*longer than 0s"):
        request({"queryLatencyP95": "0s"})


def test_shards_are_capped_with_a_warning() -> None:
    design = plan(request({"dataVolume": "1Pi"}))
    assert design.clickhouse.shards == MAX_SHARDS
    assert any("shards capped at 256, below the 512" in text for text in warnings(design))


# -- pins -----------------------------------------------------------------------------------------


PINS: list[tuple[dict[str, Any], Any, Any, str]] = [
    (
        {"clickhouse": {"version": "24.8"}},
        lambda d: d.clickhouse.version,
        "24.8",
        "clickhouse version",
    ),
    ({"clickhouse": {"shards": 4}}, lambda d: d.clickhouse.shards, 4, "shards"),
    ({"clickhouse": {"replicas": 3}}, lambda d: d.clickhouse.replicas, 3, "replicas"),
    (
        {"clickhouse": {"resources": {"cpu": 16}}},  # an int, as YAML gives it
        lambda d: d.clickhouse.resources.cpu,
        "16",
        "cpu per replica",
    ),
    (
        {"clickhouse": {"resources": {"memory": "96Gi"}}},
        lambda d: d.clickhouse.resources.memory,
        "96Gi",
        "memory per replica",
    ),
    (
        {"clickhouse": {"storage": {"size": "1Ti"}}},
        lambda d: d.clickhouse.storage.size,
        "1Ti",
        "storage per replica",
    ),
    (
        {"clickhouse": {"storage": {"storageClass": "fast-ssd"}}},
        lambda d: d.clickhouse.storage.storage_class,
        "fast-ssd",
        "clickhouse storage class",
    ),
    (
        {"clickhouse": {"keeper": {"replicas": 5}}},
        lambda d: d.clickhouse.keeper.replicas,
        5,
        "keeper replicas",
    ),
    (
        {"clickhouse": {"keeper": {"resources": {"cpu": "2", "memory": "4Gi"}}}},
        lambda d: (d.clickhouse.keeper.resources.cpu, d.clickhouse.keeper.resources.memory),
        ("2", "4Gi"),
        "keeper pod",
    ),
    (
        {"clickhouse": {"keeper": {"storage": {"size": "20Gi", "storageClass": "ssd"}}}},
        lambda d: (d.clickhouse.keeper.storage.size, d.clickhouse.keeper.storage.storage_class),
        ("20Gi", "ssd"),
        "keeper storage class",
    ),
    ({"postgres": {"version": "16"}}, lambda d: d.postgres.version, "16", "postgres version"),
    ({"postgres": {"instances": 3}}, lambda d: d.postgres.instances, 3, "postgres instances"),
    (
        {"postgres": {"resources": {"cpu": "2", "memory": "8Gi"}}},
        lambda d: (d.postgres.resources.cpu, d.postgres.resources.memory),
        ("2", "8Gi"),
        "postgres pod",
    ),
    (
        {"postgres": {"storage": {"size": "50Gi", "storageClass": "standard"}}},
        lambda d: (d.postgres.storage.size, d.postgres.storage.storage_class),
        ("50Gi", "standard"),
        "postgres storage class",
    ),
]


@pytest.mark.parametrize(("spec", "value", "expected", "label"), PINS)
def test_each_pin_is_kept_as_given_and_marked(
    spec: dict[str, Any], value: Any, expected: Any, label: str
) -> None:
    design = plan(request(**spec))
    assert value(design) == expected
    assert "pinned" in line(design, label)
    assert not warnings(design), "pins above what the requirements need draw no warning"


def test_pinned_pod_sizes_are_named_in_the_pod_line() -> None:
    design = plan(request(postgres={"resources": {"memory": "8Gi"}, "storage": {"size": "50Gi"}}))
    pod = line(design, "postgres pod")
    assert pod.startswith("postgres pod: 1 cpu, 8Gi memory, 50Gi storage")
    assert "pinned: spec.postgres.resources.memory, spec.postgres.storage.size" in pod


def test_an_unpinned_storage_class_stays_unset() -> None:
    design = plan(request(clickhouse={"storage": {"size": "1Ti"}}))
    assert design.clickhouse.storage.storage_class is None
    assert design.clickhouse.keeper.storage.storage_class is None
    assert design.postgres.storage.storage_class is None


def test_pinned_shards_drive_the_figures_that_follow() -> None:
    design = plan(
        request({"dataVolume": "10Ti", "availability": "high"}, clickhouse={"shards": 10})
    )
    # 1Ti a shard: 1024Gi / 0.75 = 1365.3 -> 1366Gi
    assert design.clickhouse.storage.size == "1366Gi"
    assert design.clickhouse.keeper.replicas == 3


@pytest.mark.parametrize(
    ("requirements", "spec", "field"),
    [
        ({"availability": "high"}, {"clickhouse": {"replicas": 1}}, "replicas"),
        ({"availability": "high"}, {"clickhouse": {"keeper": {"replicas": 1}}}, "keeper replicas"),
        ({"availability": "high"}, {"postgres": {"instances": 1}}, "postgres instances"),
        ({"dataVolume": "6Ti"}, {"clickhouse": {"shards": 1}}, "shards"),
        ({"ingestRowsPerSecond": 600_000}, {"clickhouse": {"keeper": {"replicas": 0}}}, "keeper"),
        ({"dataVolume": "1Ti"}, {"clickhouse": {"storage": {"size": "500Gi"}}}, "storage"),
        (BUSY, {"clickhouse": {"resources": {"cpu": "4"}}}, "cpu per replica"),
        (BUSY, {"clickhouse": {"resources": {"memory": "16Gi"}}}, "memory per replica"),
    ],
)
def test_a_pin_that_undercuts_the_requirements_is_kept_with_a_warning(
    requirements: dict[str, Any], spec: dict[str, Any], field: str
) -> None:
    design = plan(request(requirements, **spec))
    found = warnings(design)
    assert len(found) == 1, design.rationale
    assert found[0].startswith(f"warning: {field}")
    assert "pinned to" in found[0]


def test_replicas_pinned_to_one_under_high_availability_stay_one() -> None:
    design = plan(request({"availability": "high"}, clickhouse={"replicas": 1}))
    assert design.clickhouse.replicas == 1
    assert design.clickhouse.keeper.replicas == 0
    assert "warning: replicas pinned to 1, below the 2 needed" in warnings(design)[0]


def test_instances_pinned_while_postgres_is_disabled_are_ignored_with_a_warning() -> None:
    design = plan(request(postgres={"enabled": False, "instances": 2}))
    assert design.postgres.instances == 0
    assert "disabled" in warnings(design)[0]


# -- cost and budget -----------------------------------------------------------------------------


def test_the_cost_helper_agrees_with_the_design() -> None:
    design = plan(request({"availability": "high", "dataVolume": "5Ti"}))
    cost = monthly_cost_usd(design.clickhouse, design.postgres, PriceTable())
    assert cost == design.estimated_monthly_cost_usd


def test_prices_scale_the_cost_proportionally() -> None:
    base = plan(request(BUSY)).estimated_monthly_cost_usd
    doubled = PriceTable(cpu_core_month_usd=50, memory_gib_month_usd=6.6, storage_gib_month_usd=0.2)
    assert plan(request(BUSY), doubled).estimated_monthly_cost_usd == pytest.approx(2 * base)
    no_storage = PriceTable(storage_gib_month_usd=0)
    # The storage in the design: 2731Gi of ClickHouse and 20Gi of PostgreSQL at $0.10.
    assert plan(request(BUSY), no_storage).estimated_monthly_cost_usd == pytest.approx(
        base - 0.10 * (2731 + 20)
    )
    free = PriceTable(cpu_core_month_usd=0, memory_gib_month_usd=0, storage_gib_month_usd=0)
    assert plan(request(BUSY), free).estimated_monthly_cost_usd == 0


def test_a_budget_under_the_cost_is_refused_with_the_minimum() -> None:
    minimum = plan(request(BUSY)).estimated_monthly_cost_usd
    assert minimum == pytest.approx(1070.70)
    with pytest.raises(BudgetInfeasibleError) as caught:
        plan(request(BUSY, budget={"monthlyUSD": 500}))
    error = caught.value
    assert error.minimum_monthly_usd == minimum
    assert error.budget_monthly_usd == 500
    assert error.reason == "BudgetInfeasible"
    assert "$1,071/month" in str(error)
    assert "spec.budget.monthlyUSD" in str(error)


@pytest.mark.parametrize("budget", [1070.70, 1071, 3000])
def test_a_budget_at_or_above_the_cost_passes(budget: float) -> None:
    design = plan(request(BUSY, budget={"monthlyUSD": budget}))
    assert design.estimated_monthly_cost_usd <= budget
    assert line(design, "budget").startswith("budget: $1,070.70/month is within")


def test_pins_that_cost_more_are_refused_with_the_pinned_cost() -> None:
    pinned = request(clickhouse={"resources": {"cpu": "32"}})
    cost = plan(pinned).estimated_monthly_cost_usd
    assert cost > plan(request()).estimated_monthly_cost_usd
    with pytest.raises(BudgetInfeasibleError) as caught:
        plan(request(clickhouse={"resources": {"cpu": "32"}}, budget={"monthlyUSD": 200}))
    assert caught.value.minimum_monthly_usd == cost


# -- properties over many inputs -----------------------------------------------------------------

VOLUMES = ["1Gi", "10Gi", "100Gi", "500Gi", "1Ti", "2Ti", "3Ti", "5Ti", "10Ti", "50Ti", "300Ti"]


def test_the_same_request_gives_the_same_design() -> None:
    spec = request({**BUSY, "availability": "high"}, clickhouse={"keeper": {"replicas": 5}})
    assert plan(spec) == plan(spec)
    assert plan(spec).model_dump_json() == plan(spec.model_copy()).model_dump_json()


@pytest.mark.parametrize("availability", ["standard", "high"])
@pytest.mark.parametrize("volume", VOLUMES)
def test_every_design_holds_its_data_and_validates(volume: str, availability: str) -> None:
    req = request({"dataVolume": volume, "availability": availability})
    design = plan(req)
    ch = design.clickhouse
    assert parse_quantity(ch.storage.size) * ch.shards >= req.requirements.data_bytes
    assert parse_quantity(ch.storage.size) >= MIN_STORAGE
    assert parse_quantity(ch.storage.size) % GiB == 0
    assert MIN_CPU <= parse_quantity(ch.resources.cpu) <= MAX_CPU
    assert MIN_MEMORY <= parse_quantity(ch.resources.memory) <= MAX_MEMORY
    assert design.estimated_monthly_cost_usd > 0
    assert design.estimated_monthly_cost_usd == round(design.estimated_monthly_cost_usd, 2)
    assert PlatformDesign.model_validate(design.wire()) == design
    assert ch.keeper.replicas in (0, 1, 3)
    assert (ch.replicas > 1) == (ch.keeper.replicas == 3)


@pytest.mark.parametrize("availability", ["standard", "high"])
def test_shards_and_cost_never_fall_as_the_volume_grows(availability: str) -> None:
    designs = [plan(request({"dataVolume": v, "availability": availability})) for v in VOLUMES]
    shards = [d.clickhouse.shards for d in designs]
    costs = [d.estimated_monthly_cost_usd for d in designs]
    assert shards == sorted(shards)
    assert costs == sorted(costs)
    assert shards[-1] > shards[0]


@pytest.mark.parametrize("rows", [0, 1, 199_999, 200_000, 200_001, 1_000_000, 100_000_000])
def test_no_shard_takes_more_than_its_share_of_inserts(rows: int) -> None:
    design = plan(request({"ingestRowsPerSecond": rows}))
    shards = design.clickhouse.shards
    assert shards == MAX_SHARDS or rows <= shards * 200_000
    assert shards == 1 or rows > (shards - 1) * 200_000


def test_the_design_round_trips_through_the_wire() -> None:
    design = plan(
        request(
            {"availability": "high"},
            clickhouse={"storage": {"storageClass": "fast"}},
            budget={"monthlyUSD": 10_000},
        )
    )
    wire = design.wire()
    assert "estimatedMonthlyCostUSD" in wire
    assert wire["planner"] == {"provider": "builtin"}
    assert PlatformDesign.model_validate(wire) == design
