"""`/v1/ask` end to end on a 10-million-row chDB table, beside its own SQL run straight.

Builds the shop schema the NL engine is measured on (tests/data/nl/shop) in a fresh chDB
directory, fills `orders` with N rows (10 million by default) and the other tables with
thousands, then asks a fixed set of analytic questions through the query server's HTTP
handlers (FastAPI's test client: routing, validation, table filter, NL engine, firewall,
read-only engine). The baseline is the SQL each answer ran, executed directly on a
read-only engine of the same database: the ratio is what the query agent adds. Also
`/v1/sql` throughput, requests a second, one client. Prints one summary line, quoted in the
README.

    python bench/ask.py [--rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import clickhouse_connect
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from duet_agents.query.engines import connect  # noqa: E402
from duet_agents.query.server import create_app  # noqa: E402
from duet_agents.query.settings import QueryServerSettings  # noqa: E402
from tests.data.nl.samples import ddl  # noqa: E402

QUESTIONS = [
    "How many orders are there?",
    "Revenue by country",
    "Total revenue by channel in 2025",
    "Average order value by status",
    "Top 5 customers by revenue",
    "Number of orders per month in 2025",
    "How many distinct customers placed orders?",
    "Top 3 products by quantity sold",
]


def build(path: Path, rows: int) -> None:
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    client.command("CREATE DATABASE shop")
    for statement in ddl("shop", "clickhouse"):
        client.command(statement)
    countries = "['DE', 'NL', 'FR', 'US', 'GB', 'ES', 'IT', 'PL']"
    client.command(
        "INSERT INTO shop.customers SELECT number, concat('Customer ', toString(number)),"
        " concat('c', toString(number), '@example.com'),"
        f" {countries}[number % 8 + 1], ['consumer', 'business'][number % 2 + 1],"
        " toDate('2020-01-01') + number % 1500 FROM numbers(50000)"
    )
    client.command(
        "INSERT INTO shop.products SELECT number, concat('Product ', toString(number)),"
        " ['books', 'toys', 'garden', 'kitchen'][number % 4 + 1], 5 + number % 200"
        " FROM numbers(2000)"
    )
    client.command(
        f"INSERT INTO shop.orders SELECT number, number % 50000,"
        " toDateTime('2024-01-01 00:00:00') + number % 63072000,"
        " ['completed', 'pending', 'cancelled', 'refunded'][number % 4 + 1],"
        " ['web', 'mobile', 'store'][number % 3 + 1], (number % 50000) / 100"
        f" FROM numbers({rows})"
    )
    client.command(
        "INSERT INTO shop.order_items SELECT number, number % 1000000, number % 2000,"
        " 1 + number % 5, 5 + number % 200 FROM numbers(2000000)"
    )
    client.close()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "chdb"
        started = time.perf_counter()
        build(data, args.rows)
        print(
            f"built {args.rows:,} orders in {time.perf_counter() - started:.1f}s", file=sys.stderr
        )
        url = f"chdb://{data}?database=shop"
        settings = QueryServerSettings(database_url=url, databases=["shop"], max_rows=1000)
        with TestClient(create_app(settings)) as client:
            client.post("/v1/ask", json={"question": QUESTIONS[0]})  # introspect, index values
            asked: list[float] = []
            direct: list[float] = []
            answered: dict[str, str] = {}
            with connect(url) as engine:
                for _ in range(args.repeat):
                    for question in QUESTIONS:
                        t0 = time.perf_counter()
                        response = client.post("/v1/ask", json={"question": question})
                        asked.append(time.perf_counter() - t0)
                        if response.status_code != 200:
                            print(f"not answered: {question}: {response.text}", file=sys.stderr)
                            continue
                        sql = response.json()["sql"]
                        answered[question] = sql
                        t0 = time.perf_counter()
                        engine.execute(sql)
                        direct.append(time.perf_counter() - t0)
            sql_started = time.perf_counter()
            count = 0
            while time.perf_counter() - sql_started < 5:
                client.post("/v1/sql", json={"sql": "SELECT count() FROM orders WHERE id < 1000"})
                count += 1
            throughput = count / (time.perf_counter() - sql_started)
    p50, p95 = quantile(asked, 0.5), quantile(asked, 0.95)
    d95 = quantile(direct, 0.95)
    print(
        f"ask: /v1/ask p50 {p50 * 1000:.0f}ms p95 {p95 * 1000:.0f}ms on {args.rows:,} rows "
        f"({len(answered)}/{len(QUESTIONS)} questions answered; their SQL run directly p95 "
        f"{d95 * 1000:.0f}ms, x{p95 / d95:.2f}); /v1/sql {throughput:.0f} requests/s one client; "
        "2 cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
