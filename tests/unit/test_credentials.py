"""Passwords are kept once generated and generated only where missing."""

from __future__ import annotations

from duet_operator import credentials


def test_existing_passwords_are_kept_and_missing_ones_generated() -> None:
    kept = credentials.fill({"admin-password": "a", "readonly-password": "r"}, None)
    assert kept.clickhouse_admin_password == "a"
    assert kept.clickhouse_readonly_password == "r"
    assert len(kept.clickhouse_cluster_secret) >= 32
    assert len(kept.postgres_superuser_password) >= 32


def test_fresh_passwords_are_all_different() -> None:
    fresh = credentials.fill()
    values = [fresh.clickhouse_admin_password, fresh.clickhouse_readonly_password,
              fresh.clickhouse_cluster_secret, fresh.postgres_superuser_password,
              fresh.postgres_readonly_password, fresh.postgres_replication_password]  # fmt: skip
    assert len(set(values)) == len(values)
    assert fresh != credentials.fill()
