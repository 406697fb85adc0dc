"""How long the planner's memory lookup takes with 10,000 platforms recorded, beside the
built-in planning it precedes.

`MemoryStore.lessons_for` reads the settled remediations of platforms whose requirements fall
in a box around the new platform's (an indexed range on SQLite or PostgreSQL), scores each in
Python and derives the lessons; `capacity.plan` of the same request, measured in the same
run, is the baseline: the ratio is what consulting the memory adds to designing without it.
The recorded fleet is drawn from a fixed seed, log-uniform over the sizes one operator's
platforms span (100Gi-20Ti, 1k-500k rows/s, a week to a year, 5-200 queries, 200ms-5s), with
a remediation on about a third of them. Each lookup is timed over several runs and its
fastest kept (on a shared machine, noise only adds); p50 and p95 are over lookups.
Prints one summary line, quoted in the README.

    python bench/memory.py [--platforms N] [--lookups N] [--runs N] [--url URL]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from duet_agents.healer import ActionType, Component, DecisionPhase, SymptomType
from duet_agents.memory import MemoryStore, RemediationRecord
from duet_agents.planner import capacity
from duet_agents.planner.models import PlanRequest
from duet_agents.units import format_bytes

START = datetime(2025, 1, 1, tzinfo=UTC)
WORDS = [
    "clickstream",
    "events",
    "logs",
    "metrics",
    "billing",
    "dashboards",
    "reports",
    "adhoc",
    "iot",
    "sensors",
]
# (symptom, component, action, grows): what the fleet's remediations were.
REMEDIES = [
    (SymptomType.OOM_KILLED, Component.CLICKHOUSE, ActionType.RAISE_MEMORY, True),
    (SymptomType.VOLUME_NEARLY_FULL, Component.CLICKHOUSE, ActionType.EXPAND_STORAGE, True),
    (SymptomType.CRASH_LOOP, Component.CLICKHOUSE, ActionType.RESTART_POD, False),
    (SymptomType.OOM_KILLED, Component.KEEPER, ActionType.RAISE_MEMORY, True),
]


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def random_request(rng: random.Random) -> PlanRequest:
    return PlanRequest.model_validate(
        {
            "description": " ".join(rng.sample(WORDS, 3)),
            "requirements": {
                "dataVolume": format_bytes(int(log_uniform(rng, 100, 20 * 1024)) * 2**30),
                "ingestRowsPerSecond": int(log_uniform(rng, 1_000, 500_000)),
                "retentionDays": int(log_uniform(rng, 7, 365)),
                "concurrentQueries": int(log_uniform(rng, 5, 200)),
                "queryLatencyP95": f"{int(log_uniform(rng, 200, 5000))}ms",
                "availability": "high" if rng.random() < 0.3 else "standard",
            },
        }
    )


def fill(store: MemoryStore, platforms: int, rng: random.Random) -> int:
    """Record the fleet; how many remediations."""
    design = capacity.plan(random_request(random.Random(0)))  # the design's body is not read
    count = 0
    for i in range(platforms):
        platform = f"fleet-{i % 97}/p{i}"
        store.record_design(platform, random_request(rng), design, recorded_at=START)
        if rng.random() < 1 / 3:
            symptom, component, action, grows = rng.choice(REMEDIES)
            before = rng.choice([8, 16, 32, 64])
            store.record_remediation(
                platform,
                RemediationRecord(
                    name=f"p{i}-{str(symptom).lower()}-1",
                    symptom=symptom,
                    component=component,
                    action=action,
                    before=f"{before}Gi" if grows else None,
                    after=f"{before * 3 // 2}Gi" if grows else None,
                    phase=DecisionPhase.VERIFIED if rng.random() < 0.8 else DecisionPhase.FAILED,
                    decided_at=START + timedelta(hours=1),
                ),
            )
            count += 1
    return count


def fastest_ms(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def percentiles(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=100)[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--platforms", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--url", help="An empty database to fill (default: a new SQLite file).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="duet-bench-memory-") as scratch:
        url = args.url or f"sqlite:///{Path(scratch) / 'memory.db'}"
        rng = random.Random(args.seed)
        with MemoryStore.open(url) as store:
            started = time.perf_counter()
            remediations = fill(store, args.platforms, rng)
            filled = time.perf_counter() - started
            requests = [random_request(rng) for _ in range(args.lookups)]
            lookups, plans, found = [], [], 0
            for request in requests:
                found += len(store.lessons_for(request))  # also warms caches before timing
                # Interleaved, so both see the same moment of a noisy machine.
                lookups.append(fastest_ms(lambda: store.lessons_for(request), args.runs))  # noqa: B023
                plans.append(fastest_ms(lambda: capacity.plan(request), args.runs))  # noqa: B023
            backend = store._engine.dialect.name

    l50, l95 = percentiles(lookups)
    p50, p95 = percentiles(plans)
    print(
        f"  {args.platforms} platforms and {remediations} remediations recorded in "
        f"{filled:.1f} s; {found} lessons over {len(requests)} lookups; fastest of "
        f"{args.runs} runs each"
    )
    print(
        f"memory: lessons_for p50 {l50:.2f} ms p95 {l95:.2f} ms (built-in plan p50 {p50:.2f} ms "
        f"p95 {p95:.2f} ms; x{l50 / p50:.1f} at p50, x{l95 / p95:.1f} at p95) with "
        f"{args.platforms} platforms on {backend}; {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
