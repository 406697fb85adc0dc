"""Rewriting the CREATE statements a ClickHouse host reports into ones another host can replay.

`system.tables.create_table_query` is ClickHouse's own formatting of a table's definition:
one line, identifiers in backquotes where needed, no UUID, no ON CLUSTER. Only its header and
the arguments of replicated engines are rewritten here, with anchored patterns; the body is
passed through as ClickHouse printed it, so what a new host creates is what the healthy one has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from clickhouse_connect.driver.binding import quote_identifier


class DDLError(ValueError):
    """A statement whose shape this module does not know: it names the object, never the
    statement (definitions can hold credentials)."""


_IDENT = r"(?:`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)"
_STRING = r"'(?:[^'\\]|\\.)*'"
_HEADER = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?"
    r"(?P<kind>TABLE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY|LIVE\s+VIEW|WINDOW\s+VIEW)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_IDENT}(?:\.{_IDENT})?)"
    rf"(?:\s+UUID\s+{_STRING})?"
    rf"(?:\s+TO\s+INNER\s+UUID\s+{_STRING})?"
    rf"(?:\s+ON\s+CLUSTER\s+(?:{_IDENT}|{_STRING}))?",
    re.IGNORECASE,
)
_UUID_CLAUSES = re.compile(rf"\s+(?:TO\s+INNER\s+)?UUID\s+{_STRING}", re.IGNORECASE)
# The replica path and replica name of Replicated*MergeTree, the first two arguments.
_REPLICATED_TABLE = re.compile(
    rf"(?P<head>\bENGINE\s*=\s*Replicated\w*MergeTree\(\s*)(?P<path>{_STRING})"
    rf"(?P<sep>\s*,\s*)(?P<replica>{_STRING})"
)
# The Replicated database engine: a path, then the shard and replica names.
_REPLICATED_DATABASE = re.compile(
    rf"^(?P<head>\s*Replicated\(\s*{_STRING}\s*,\s*)(?P<shard>{_STRING})"
    rf"(?P<sep>\s*,\s*)(?P<replica>{_STRING})"
)


def kind_of(create_query: str) -> str:
    """TABLE, VIEW, MATERIALIZED VIEW, DICTIONARY, ...: what the statement creates."""
    found = _HEADER.match(create_query)
    if found is None:
        raise DDLError("not a CREATE statement of a table, view or dictionary")
    return " ".join(found["kind"].upper().split())


def replayable(create_query: str, *, uuid: str | None = None, inner_uuid: str | None = None) -> str:
    """The statement with `IF NOT EXISTS`, the object's UUID (and its inner table's) and no
    `ON CLUSTER`: running it twice, or on a host that has it, changes nothing.

    Keeping UUIDs is what `ON CLUSTER` does too: replicated engines whose path holds `{uuid}`
    (Duet's default_replica_path does) then find the same replica path on every host.
    """
    found = _HEADER.match(create_query)
    if found is None:
        raise DDLError("not a CREATE statement of a table, view or dictionary")
    kind = " ".join(found["kind"].upper().split())
    header = f"CREATE {kind} IF NOT EXISTS {found['name']}"
    if uuid:
        header += f" UUID {quote_string(uuid)}"
    if inner_uuid:
        header += f" TO INNER UUID {quote_string(inner_uuid)}"
    return header + create_query[found.end() :]


def create_database(name: str, engine_full: str) -> str:
    engine = f" ENGINE = {engine_full}" if engine_full else ""
    return f"CREATE DATABASE IF NOT EXISTS {quote_identifier(name)}{engine}"


def unexpand_table_macros(create_query: str, macros: Mapping[str, str]) -> str:
    """Put `{shard}` and `{replica}` back where the reporting host's values stand in the
    replica path and name of a Replicated*MergeTree engine.

    ClickHouse keeps the macros unexpanded in most versions, but expands them in what it
    reports for some engines and versions (tables created with the server's default path, or
    by older servers); a new host must read the macros, or it would join another host's
    replica. In the path, only a whole segment equal to the shard's value is taken for it.
    """

    def swap(found: re.Match[str]) -> str:
        path = _segments(found["path"], macros)
        replica = _substring(found["replica"], macros, "replica")
        return f"{found['head']}{path}{found['sep']}{replica}"

    return _REPLICATED_TABLE.sub(swap, create_query)


def unexpand_database_macros(engine_full: str, macros: Mapping[str, str]) -> str:
    """The same for a Replicated database's shard and replica names."""

    def swap(found: re.Match[str]) -> str:
        shard = _substring(found["shard"], macros, "shard", whole=True)
        replica = _substring(found["replica"], macros, "replica")
        return f"{found['head']}{shard}{found['sep']}{replica}"

    return _REPLICATED_DATABASE.sub(swap, engine_full)


def comparable(create_query: str, macros: Mapping[str, str]) -> str:
    """A definition as two hosts should both report it: macros unexpanded, no UUID clauses,
    whitespace collapsed."""
    text = _UUID_CLAUSES.sub("", unexpand_table_macros(create_query, macros))
    return " ".join(text.split())


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _plain(value: str | None) -> str | None:
    # A value that needs escaping in a literal is no host name or shard number; leave it.
    if not value or any(c in value for c in "'\\/{}"):
        return None
    return value


def _segments(literal: str, macros: Mapping[str, str]) -> str:
    shard, replica = _plain(macros.get("shard")), _plain(macros.get("replica"))
    parts = literal[1:-1].split("/")
    out = []
    for part in parts:
        if shard is not None and part == shard:
            out.append("{shard}")
        elif replica is not None and part == replica:
            out.append("{replica}")
        else:
            out.append(part)
    return "'" + "/".join(out) + "'"


def _substring(literal: str, macros: Mapping[str, str], macro: str, *, whole: bool = False) -> str:
    value = _plain(macros.get(macro))
    inner = literal[1:-1]
    if value is None:
        return literal
    if whole:
        return "'{" + macro + "}'" if inner == value else literal
    return "'" + inner.replace(value, "{" + macro + "}") + "'"
