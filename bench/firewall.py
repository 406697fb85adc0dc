"""How long the SQL firewall takes per statement, beside a bare sqlglot parse of the same SQL.

`check()` tokenizes, parses, inspects, caps the rows, prints and parses the printed SQL again, so
its floor is a parse; the ratio to a bare `sqlglot.parse_one` measured in the same run is what
the firewall adds. The statements are a few hundred queries of the kinds a model writes (filters,
joins, CTEs, windows, unions, catalogs), some of them refused, in both dialects, from a fixed
seed. Each is timed over several runs and its fastest kept (on a shared machine, noise only
adds); p50 and p95 are over statements.
Prints one summary line, quoted in the README.

    python bench/firewall.py [--statements N] [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import statistics
import time
from collections.abc import Callable

import sqlglot
from sqlglot.errors import SqlglotError

from duet_agents.query.firewall import Dialect, check

TABLES = ["events", "analytics.events", "sales.orders", "page_views", "shop.customers"]
COLUMNS = ["user_id", "country", "amount", "status", "device", "campaign", "price", "region"]

# {t} a table, {c} and {d} columns, {n} a number; both dialects read these.
COMMON = [
    "SELECT {c}, count(*) AS n FROM {t} GROUP BY {c} ORDER BY n DESC LIMIT {n}",
    "SELECT * FROM {t} WHERE {c} = 'FR' AND {d} > {n}",
    "SELECT {c}, sum({d}) AS total FROM {t} GROUP BY {c} HAVING sum({d}) > {n} ORDER BY total DESC",
    "SELECT count(DISTINCT {c}) FROM {t}",
    "SELECT a.{c}, b.{d} FROM {t} AS a JOIN {t} AS b ON a.{c} = b.{c} WHERE b.{d} IS NOT NULL",
    "WITH top AS (SELECT {c}, count(*) AS n FROM {t} GROUP BY {c} ORDER BY n DESC LIMIT 10) "
    "SELECT t.* FROM {t} AS t JOIN top ON t.{c} = top.{c}",
    "SELECT {c}, {d}, row_number() OVER (PARTITION BY {c} ORDER BY {d} DESC) AS rank FROM {t}",
    "SELECT {c} FROM {t} WHERE {d} IN (SELECT {d} FROM {t} WHERE {c} LIKE 'a%') LIMIT {n}",
    "SELECT {c} FROM {t} UNION ALL SELECT {d} FROM {t}",
    "SELECT CASE WHEN {d} > {n} THEN 'high' ELSE 'low' END AS band, count(*) FROM {t} GROUP BY 1",
    "SELECT {c}, avg({d}) AS mean, max({d}) AS top, min({d}) AS bottom FROM {t} "
    "WHERE {c} IS NOT NULL GROUP BY {c} ORDER BY mean DESC LIMIT {n}",
    "SELECT * FROM information_schema.columns WHERE table_name = 'orders'",
    "SELECT {c} FROM {t} ORDER BY {d} LIMIT {n} OFFSET 20",
]
CLICKHOUSE = [
    *COMMON,
    "SELECT toStartOfDay(ts) AS day, uniqExact({c}) FROM {t} WHERE ts >= now() - INTERVAL 7 DAY "
    "GROUP BY day ORDER BY day",
    "WITH daily AS (SELECT toDate(ts) AS d, count() AS c FROM {t} WHERE ts >= today() - 30 GROUP BY"
    " d), weekly AS (SELECT toStartOfWeek(d) AS w, sum(c) AS c FROM daily GROUP BY w) SELECT w, c, "
    "c / lagInFrame(c) OVER (ORDER BY w) AS growth FROM weekly ORDER BY w",
    "SELECT {c}, quantile(0.95)({d}) AS p95 FROM {t} GROUP BY {c}",
    "SELECT {c}, {d} FROM {t} ORDER BY {d} DESC LIMIT 3 BY {c}",
    "SELECT name, total_rows, total_bytes FROM system.tables WHERE database = 'analytics'",
    "SELECT number FROM numbers({n})",
    "SELECT {c}, dictGet('regions', 'name', toUInt64({d})) FROM {t} LIMIT {n}",
    "EXPLAIN PLAN indexes = 1 SELECT {c} FROM {t} WHERE {d} > {n}",
    # refused
    "SELECT * FROM url('http://169.254.169.254/latest/meta-data', CSV)",
    "SELECT * FROM system.users",
    "SELECT query FROM system.query_log WHERE user != 'readonly' LIMIT {n}",
    "SELECT {c} FROM {t} SETTINGS max_execution_time = 0",
    "SELECT * FROM remote('10.0.0.1', default.secrets)",
    "SELECT * FROM {t} WHERE {c} IN (SELECT name FROM s3('https://b/k.csv', 'CSV', 'name String'))",
    "SELECT file('/etc/passwd')",
    "SELECT 1; DROP TABLE {t}",
]
POSTGRES = [
    *COMMON,
    "SELECT date_trunc('day', created_at) AS day, count(*) FROM {t} "
    "WHERE created_at > now() - interval '7 days' GROUP BY 1 ORDER BY 1",
    "SELECT {c}, percentile_cont(0.95) WITHIN GROUP (ORDER BY {d}) FROM {t} GROUP BY {c}",
    "SELECT c.relname, a.attname FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_attribute AS a "
    "ON a.attrelid = c.oid WHERE c.relkind = 'r' AND a.attnum > 0",
    "SELECT * FROM generate_series(1, {n}) AS g(i)",
    "SELECT {c} FROM {t} FETCH FIRST {n} ROWS ONLY",
    "SELECT {c}, {d}, lag({d}) OVER (ORDER BY {d}) AS previous FROM {t} WHERE {c} <> 'x'",
    "EXPLAIN (FORMAT JSON) SELECT {c} FROM {t} WHERE {d} > {n}",
    # refused
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT rolname, rolpassword FROM pg_authid",
    "SELECT * FROM {t} FOR UPDATE",
    "WITH gone AS (DELETE FROM {t} RETURNING *) SELECT count(*) FROM gone",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT * FROM dblink('host=10.0.0.1', 'SELECT 1') AS t(a int)",
    "EXPLAIN ANALYZE SELECT * FROM {t}",
    "SELECT query FROM pg_stat_activity",
]


def statements(count: int, seed: int) -> list[tuple[Dialect, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        dialect = (Dialect.CLICKHOUSE, Dialect.POSTGRES)[i % 2]
        template = rng.choice(CLICKHOUSE if dialect is Dialect.CLICKHOUSE else POSTGRES)
        c, d = rng.sample(COLUMNS, 2)
        sql = template.format(t=rng.choice(TABLES), c=c, d=d, n=rng.choice([5, 100, 5000]))
        out.append((dialect, sql))
    return out


def bare_parse(sql: str, dialect: Dialect) -> None:
    # Some refused statements do not parse either; the time spent finding out still counts.
    with contextlib.suppress(SqlglotError):
        sqlglot.parse_one(sql, read=dialect.value)


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
    parser.add_argument("--statements", type=int, default=400)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # sqlglot warns on every EXPLAIN it reads as an opaque command; the baseline parses those.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)

    corpus = statements(args.statements, args.seed)
    checks: dict[Dialect, list[float]] = {dialect: [] for dialect in Dialect}
    parses: dict[Dialect, list[float]] = {dialect: [] for dialect in Dialect}
    allowed = 0
    for dialect, sql in corpus:
        allowed += check(sql, dialect).allowed  # also warms caches before timing
        # Interleaved, so both see the same moment of a noisy machine.
        checks[dialect].append(fastest_ms(lambda: check(sql, dialect), args.runs))  # noqa: B023
        parses[dialect].append(fastest_ms(lambda: bare_parse(sql, dialect), args.runs))  # noqa: B023

    for dialect in Dialect:
        c50, c95 = percentiles(checks[dialect])
        p50, p95 = percentiles(parses[dialect])
        print(
            f"  {dialect}: {len(checks[dialect])} statements, check p50 {c50:.2f} ms "
            f"p95 {c95:.2f} ms, bare parse p50 {p50:.2f} ms p95 {p95:.2f} ms"
        )
    c50, c95 = percentiles([t for times in checks.values() for t in times])
    p50, p95 = percentiles([t for times in parses.values() for t in times])
    print(f"  {allowed} allowed, {len(corpus) - allowed} refused; fastest of {args.runs} runs each")
    print(
        f"firewall: check p50 {c50:.2f} ms p95 {c95:.2f} ms (bare parse p50 {p50:.2f} ms "
        f"p95 {p95:.2f} ms; x{c50 / p50:.1f} at p50, x{c95 / p95:.1f} at p95) over "
        f"{len(corpus)} statements; {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
