"""Mock data: realistic rows for a database's tables, from their column names and types, with
keys that join.

`generate(catalog, rows=100, seed=7)` is pure: it reads a `Catalog` (what the engines'
introspection returns) and returns rows, parents first, for a writer to insert
(mock_writer.py). Values come from faker providers chosen by a column's name (`email`,
`first_name`, `city`, `price`, `status`, `created_at`...) and are fitted to its type
(ClickHouse and PostgreSQL spellings; nullable columns get some NULLs). Keys are kept
consistent: primary and identity keys are unique, and every column of a join (a declared
foreign key, or one the catalog inferred from names) draws from the keys of the table it
references, so the data joins like real data. Parents are generated before their children; a
cycle of references is broken at a nullable column, left NULL, or refused.

The same catalog, seed, existing state and `now` give the same rows.
"""

from __future__ import annotations

import graphlib
import ipaddress
import itertools
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from enum import StrEnum
from typing import Any

from faker import Faker

from duet_agents.query.catalog import Catalog, Join, Table, find_joins
from duet_agents.query.firewall import Dialect

# New rows' dates fall within this window before `now`.
RECENT = timedelta(days=365)
# Share of NULLs in a nullable column that is not a key.
NULL_RATE = 0.1
# Attempts at a fresh value for a unique key before giving up on the table.
UNIQUE_ATTEMPTS = 64


class MockError(Exception):
    """Mock data cannot be generated as asked; the message names the table or column."""


class UnknownTableError(MockError):
    """A table named by the caller is not in the catalog."""


@dataclass(frozen=True)
class TableState:
    """What a table already holds, as far as generating more rows for it needs to know."""

    rows: int = 0
    # The largest value of each integer key column: new keys start after it.
    key_max: Mapping[str, int] = field(default_factory=dict)
    # Values present in key columns (a sample when the table is large): references to a table
    # that is not being filled draw from them, and new unique keys avoid them.
    key_values: Mapping[tuple[str, ...], Sequence[tuple[Any, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class StateQuery:
    """What to read from one table before generating (see `needed_state`): its row count, the
    maximum of each `max_of` column, and the distinct values of each `values_of` group."""

    schema: str
    table: str
    max_of: tuple[str, ...]
    values_of: tuple[tuple[str, ...], ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class TableData:
    """Rows for one table, values in the order of `columns` (`types` in the database's
    spelling). Columns the database computes itself are left out."""

    schema: str
    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class MockData:
    """The generated tables, parents before children, and notes on what was left out."""

    tables: list[TableData]
    notes: list[str]

    def by_table(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t.qualified: t.rows for t in self.tables}

    def table(self, qualified: str) -> TableData:
        return next(t for t in self.tables if t.qualified == qualified)


# -- types ----------------------------------------------------------------------------------------


class Kind(StrEnum):
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    STRING = "string"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    UUID = "uuid"
    JSON = "json"
    ENUM = "enum"
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    ARRAY = "array"
    UNSUPPORTED = "unsupported"


_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class ValueType:
    """What a column's type accepts, as far as generating values goes."""

    kind: Kind
    low: int = 0  # INT bounds
    high: int = 0
    precision: int = 0  # DECIMAL digits
    scale: int = 0  # DECIMAL fraction digits; DATETIME fractional-second digits
    length: int | None = None  # STRING: at most this many characters (bytes if `fixed`)
    fixed: bool = False  # ClickHouse FixedString(n): n bytes
    labels: tuple[str, ...] = ()  # ENUM
    element: ValueType | None = None  # ARRAY
    aware: bool = False  # DATETIME: timezone-aware values (UTC)
    earliest: date = date(1, 1, 1)  # DATE, DATETIME: ClickHouse's Date starts in 1970


def parse_type(
    spelling: str, dialect: Dialect, enums: Mapping[str, Sequence[str]] | None = None
) -> ValueType:
    """The `ValueType` of a column type in the database's spelling (`Nullable(Decimal(10, 2))`,
    `character varying(80)`); `enums` gives the labels of PostgreSQL enum types by name.
    Nullability is the column's: `Nullable(...)` and `LowCardinality(...)` are looked through."""
    if dialect is Dialect.CLICKHOUSE:
        return _clickhouse_type(spelling.strip())
    return _postgres_type(spelling.strip(), enums or {})


_CH_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$", re.DOTALL)
_CH_INT = re.compile(r"^(U?)Int(8|16|32|64|128|256)$")
_CH_DECIMAL = re.compile(r"^Decimal(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$")
_CH_DECIMAL_N = re.compile(r"^Decimal(32|64|128|256)\(\s*(\d+)\s*\)$")
_CH_DECIMAL_DIGITS = {"32": 9, "64": 18, "128": 38, "256": 76}
_CH_FIXED = re.compile(r"^FixedString\(\s*(\d+)\s*\)$")
_CH_DATETIME = re.compile(r"^DateTime(?:\(.*\))?$")
_CH_DATETIME64 = re.compile(r"^DateTime64\(\s*(\d+)\s*(?:,.*)?\)$")
_CH_ENUM = re.compile(r"^Enum(?:8|16)?\((.*)\)$", re.DOTALL)
_CH_ENUM_LABEL = re.compile(r"'((?:[^'\\]|\\.)*)'\s*(?:=\s*-?\d+)?")
_CH_ESCAPE = re.compile(r"\\(.)")
_CH_ARRAY = re.compile(r"^Array\((.*)\)$", re.DOTALL)
_CH_SIMPLE = {
    "String": ValueType(Kind.STRING),
    "Bool": ValueType(Kind.BOOL),
    "Boolean": ValueType(Kind.BOOL),
    "Float32": ValueType(Kind.FLOAT),
    "Float64": ValueType(Kind.FLOAT),
    "BFloat16": ValueType(Kind.FLOAT),
    "Date": ValueType(Kind.DATE, earliest=_EPOCH),
    "Date32": ValueType(Kind.DATE, earliest=date(1900, 1, 1)),
    # clickhouse-connect converts aware datetimes exactly, naive ones by this process's zone.
    "DateTime": ValueType(Kind.DATETIME, aware=True, earliest=_EPOCH),
    "UUID": ValueType(Kind.UUID),
    "IPv4": ValueType(Kind.IPV4),
    "IPv6": ValueType(Kind.IPV6),
    "JSON": ValueType(Kind.JSON),
    "Object('json')": ValueType(Kind.JSON),
}
_UNSUPPORTED = ValueType(Kind.UNSUPPORTED)


def _clickhouse_type(t: str) -> ValueType:
    while match := _CH_WRAPPER.match(t):
        t = match.group(1).strip()
    if _CH_DATETIME.match(t):
        t = "DateTime"
    found = _CH_SIMPLE.get(t)
    if found is None and (match := _CH_INT.match(t)):
        bits = int(match.group(2))
        low = 0 if match.group(1) else -(2 ** (bits - 1))
        found = ValueType(Kind.INT, low=low, high=low + 2**bits - 1)
    elif found is None and (match := _CH_DECIMAL.match(t)):
        precision, scale = int(match.group(1) or 10), int(match.group(2) or 0)
        found = ValueType(Kind.DECIMAL, precision=precision, scale=scale)
    elif found is None and (match := _CH_DECIMAL_N.match(t)):
        precision = _CH_DECIMAL_DIGITS[match.group(1)]
        found = ValueType(Kind.DECIMAL, precision=precision, scale=int(match.group(2)))
    elif found is None and (match := _CH_FIXED.match(t)):
        found = ValueType(Kind.STRING, length=int(match.group(1)), fixed=True)
    elif found is None and (match := _CH_DATETIME64.match(t)):
        scale = int(match.group(1))
        found = ValueType(Kind.DATETIME, scale=scale, aware=True, earliest=date(1900, 1, 1))
    elif found is None and (match := _CH_ENUM.match(t)):
        # ClickHouse escapes quotes and backslashes in labels with a backslash.
        labels = tuple(
            _CH_ESCAPE.sub(r"\1", label) for label in _CH_ENUM_LABEL.findall(match.group(1))
        )
        found = ValueType(Kind.ENUM, labels=labels) if labels else None
    elif found is None and (match := _CH_ARRAY.match(t)):
        found = _array(_clickhouse_type(match.group(1).strip()))
    return found or _UNSUPPORTED


def _array(element: ValueType) -> ValueType:
    if element.kind in (Kind.ARRAY, Kind.UNSUPPORTED):
        return _UNSUPPORTED
    return ValueType(Kind.ARRAY, element=element)


_PG_NUMERIC = re.compile(r"^(?:numeric|decimal)(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$")
_PG_VARCHAR = re.compile(r"^(?:character varying|varchar)(?:\((\d+)\))?$")
_PG_CHAR = re.compile(r"^(?:character|char|bpchar)(?:\((\d+)\))?$")
_PG_TIMESTAMP = re.compile(r"^timestamp(?:\((\d)\))?(?: (with|without) time zone)?$")
_PG_TIME = re.compile(r"^time(?:\((\d)\))?(?: (?:with|without) time zone)?$")
_PG_SIMPLE = {
    "smallint": ValueType(Kind.INT, low=-(2**15), high=2**15 - 1),
    "integer": ValueType(Kind.INT, low=-(2**31), high=2**31 - 1),
    "bigint": ValueType(Kind.INT, low=-(2**63), high=2**63 - 1),
    "text": ValueType(Kind.STRING),
    "citext": ValueType(Kind.STRING),
    "name": ValueType(Kind.STRING, length=63),
    "boolean": ValueType(Kind.BOOL),
    "real": ValueType(Kind.FLOAT),
    "double precision": ValueType(Kind.FLOAT),
    "date": ValueType(Kind.DATE),
    "uuid": ValueType(Kind.UUID),
    "json": ValueType(Kind.JSON),
    "jsonb": ValueType(Kind.JSON),
    "inet": ValueType(Kind.IPV4),
    "cidr": ValueType(Kind.IPV4),
}
# An unbounded numeric: money-like values.
_PG_NUMERIC_DEFAULT = (12, 2)


def _postgres_type(t: str, enums: Mapping[str, Sequence[str]]) -> ValueType:
    if t in enums:
        return ValueType(Kind.ENUM, labels=tuple(enums[t]))
    if t.endswith("[]"):
        return _array(_postgres_type(t[:-2], enums))
    lowered = t.lower()
    found = _PG_SIMPLE.get(lowered)
    if found is None and (match := _PG_NUMERIC.match(lowered)):
        precision, scale = _PG_NUMERIC_DEFAULT
        if match.group(1) is not None:
            precision, scale = int(match.group(1)), int(match.group(2) or 0)
        found = ValueType(Kind.DECIMAL, precision=precision, scale=scale)
    elif found is None and (match := _PG_VARCHAR.match(lowered)):
        found = ValueType(Kind.STRING, length=int(match.group(1)) if match.group(1) else None)
    elif found is None and (match := _PG_CHAR.match(lowered)):
        found = ValueType(Kind.STRING, length=int(match.group(1) or 1))
    elif found is None and (match := _PG_TIMESTAMP.match(lowered)):
        scale = int(match.group(1)) if match.group(1) else 6
        found = ValueType(Kind.DATETIME, scale=scale, aware=match.group(2) == "with")
    elif found is None and _PG_TIME.match(lowered):
        found = ValueType(Kind.TIME)
    return found or _UNSUPPORTED


# -- roles: what a column's name says it holds ----------------------------------------------------


def _table_of(text: str) -> dict[str, tuple[str, ...]]:
    """`key: word word...` lines as a mapping, so the vocabularies below read as tables; a key
    on several lines gathers their words."""
    table: dict[str, tuple[str, ...]] = {}
    for line in text.strip().splitlines():
        key, _, words = line.partition(": ")
        table[key.strip()] = table.get(key.strip(), ()) + tuple(words.split())
    return table


# Role: the column names (snake_case) that mean it.
_NAMES = _table_of("""
email: email email_address mail e_mail
first_name: first_name firstname given_name forename
last_name: last_name lastname surname family_name
name: name
person_name: full_name fullname display_name contact_name customer_name author owner_name
username: username user_name login handle nickname
phone: phone phone_number telephone tel mobile cell
city: city town
country: country country_name
country_code: country_code country_iso iso_country cc
region: state province county
postcode: zip zipcode zip_code postcode postal_code
address: address street street_address address_line1 address1 line1
company: company company_name organization organisation employer
url: url website homepage link page_url referrer referer
path: path page page_path uri endpoint route
domain: domain hostname host
ip: ip ip_address ipaddress client_ip remote_addr ipv4 ipv6
user_agent: user_agent useragent ua
currency: currency currency_code
money: price amount total cost revenue subtotal balance fee tax discount salary spend budget
money: income unit_price
quantity: quantity qty units count items num_items stock inventory
age: age
rating: rating stars
score: score
year: year
latitude: lat latitude
longitude: lon lng long longitude
ratio: percent percentage pct rate ratio share
duration: duration elapsed latency
created: created created_at created_on creation_date date_created inserted_at signup_at
created: signed_up_at registered_at joined_at
after: updated updated_at modified modified_at last_modified date_updated
event_time: ts timestamp time event_time event_ts occurred_at happened_at logged_at date day
event_time: event_date
birth: birth_date birthdate birthday date_of_birth dob
title: title headline subject
text: description comment comments notes note body text message summary bio review
color: color colour
job: job job_title occupation
language: language lang locale language_code
timezone: timezone time_zone tz
slug: slug
sku: sku product_code
hex: hash checksum sha sha1 sha256 md5 token digest
json: metadata meta attributes attrs properties props payload extra settings data context
json: details params
tags: tags labels keywords
uuid: uuid guid
file_name: file_name filename
true_mostly: active enabled verified valid visible published
false_mostly: deleted archived blocked banned disabled hidden test
""")
_ROLE_BY_NAME = {name: role for role, names in _NAMES.items() for name in names}
# Role: the name endings that mean it, tried in order (`_country_code` before `_country`).
_SUFFIXES = _table_of("""
email: _email
phone: _phone
url: _url
ip: _ip
city: _city
country_code: _country_code
country: _country
address: _address
money: _amount _price _total _cost _fee _revenue
quantity: _count _qty _quantity
category:status: _status _state
category:kind: _type _kind
hex: _hash _token
uuid: _uuid _guid
ratio: _pct _percent _rate _ratio
duration: _ms _seconds _secs
score: _score
name: _name
""")
_TIME_SUFFIXES = ("_at", "_on", "_date", "_time", "_ts", "_timestamp")
# Timestamps that follow the row's creation (when it has one); some of them are usually unset.
_AFTER_WORDS = _table_of("""
after: updated modified shipped delivered completed paid confirmed processed resolved last_
after: ended finished
rare: deleted archived cancelled canceled closed
future: expires expiry expiration due valid_until renews ends
""")
# Categorical columns: their values, the more common first.
_CATEGORIES = _table_of("""
channel: organic direct email social paid_search referral
source: organic direct email social paid_search referral
utm_source: google newsletter facebook twitter linkedin
device: desktop mobile tablet
device_type: desktop mobile tablet
os: Windows macOS iOS Android Linux
browser: Chrome Safari Edge Firefox
platform: web ios android
plan: free pro business enterprise
tier: free pro business enterprise
role: member admin viewer owner
gender: female male non-binary
level: info warning error debug
severity: info warning error critical
priority: medium low high urgent
method: card paypal bank_transfer apple_pay
payment_method: card paypal bank_transfer apple_pay
category: electronics books clothing home toys sports
segment: consumer corporate small_business
environment: production staging development
env: production staging development
region: EMEA north_america APAC LATAM
status: active pending completed cancelled
kind: standard premium basic
type: standard premium basic
""")
# `status` and `kind` read better when they fit the table: words in the table's name -> values.
_STATUS_BY_TABLE = _table_of("""
order purchase shipment: delivered shipped paid pending cancelled
payment transaction invoice charge: succeeded pending failed refunded
user customer account member subscription: active inactive suspended
ticket issue task: open in_progress resolved closed
""")
_KIND_BY_TABLE = _table_of("""
event click view visit hit: page_view click add_to_cart purchase
payment transaction: charge refund payout
product item: physical digital service
""")


class Family(StrEnum):
    """What kind of value a role produces, to check it against the column's type."""

    TEXT = "text"
    NUMBER = "number"
    TIME = "time"
    BOOL = "bool"
    CATEGORY = "category"
    JSON = "json"
    IP = "ip"
    UUID = "uuid"


_FAMILY_OF_ROLES = _table_of("""
number: money quantity age rating score year latitude longitude ratio duration
time: created after rare_after future event_time birth
bool: true_mostly false_mostly bool
json: json
ip: ip
uuid: uuid
""")
_ROLE_FAMILY = {role: Family(f) for f, roles in _FAMILY_OF_ROLES.items() for role in roles}
_FITS = {
    Family.TEXT: {Kind.STRING},
    Family.NUMBER: {Kind.INT, Kind.FLOAT, Kind.DECIMAL, Kind.STRING},
    Family.TIME: {Kind.DATE, Kind.DATETIME, Kind.INT, Kind.STRING},
    Family.BOOL: {Kind.BOOL, Kind.INT},
    Family.CATEGORY: {Kind.STRING, Kind.INT},
    Family.JSON: {Kind.JSON, Kind.STRING},
    Family.IP: {Kind.IPV4, Kind.IPV6, Kind.STRING},
    Family.UUID: {Kind.UUID, Kind.STRING},
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def column_role(column: str) -> str | None:
    """What the column's name says it holds (`email`, `money`, `created`, `category:status`,
    `identifier`...), or None when the name says nothing more than the type."""
    name = _CAMEL.sub("_", column).lower().strip("_")
    if name in _ROLE_BY_NAME:
        return _ROLE_BY_NAME[name]
    if name in _CATEGORIES:
        return f"category:{name}"
    if name.startswith(("is_", "has_", "can_", "should_", "was_")):
        rest = _ROLE_BY_NAME.get(name.split("_", 1)[1])
        return rest if rest in ("true_mostly", "false_mostly") else "bool"
    if name.endswith(_TIME_SUFFIXES):
        return _time_role(name)
    if name == "id" or name.endswith("_id"):
        return "identifier"
    for role, suffixes in _SUFFIXES.items():
        if name.endswith(suffixes):
            return role
    if name.startswith(("num_", "n_", "count_")):
        return "quantity"
    return None


def _time_role(name: str) -> str:
    def says(kind: str) -> bool:
        return any(word in name for word in _AFTER_WORDS[kind])

    if says("future"):
        return "future"
    if says("rare"):
        return "rare_after"
    if says("after"):
        return "after"
    return "birth" if "birth" in name else "event_time"


def _family(role: str) -> Family:
    if role.startswith("category:"):
        return Family.CATEGORY
    return _ROLE_FAMILY.get(role, Family.TEXT)


def _fits(role: str, vtype: ValueType) -> bool:
    """Whether a value for `role` can go into a column of `vtype`. A time goes into an integer
    only as Unix seconds, so only into one wide enough (a `day UInt8` is a day number)."""
    family = _family(role)
    if vtype.kind not in _FITS[family]:
        return False
    return not (family is Family.TIME and vtype.kind is Kind.INT and vtype.high < 2**31 - 1)


def _category_values(role: str, table: str) -> tuple[str, ...]:
    name = role.split(":", 1)[1]
    lowered = table.lower()
    by_table = {"status": _STATUS_BY_TABLE, "kind": _KIND_BY_TABLE, "type": _KIND_BY_TABLE}
    for words, values in by_table.get(name, {}).items():
        if any(word in lowered for word in words.split()):
            return values
    return _CATEGORIES[name]


# -- planning: which tables, in which order, with which keys ---------------------------------------

# ClickHouse columns the server computes; an INSERT may not name them.
_COMPUTED_DEFAULTS = ("MATERIALIZED ", "ALIAS ", "EPHEMERAL")
_WRITABLE_POSTGRES = ("table", "partitioned table")
_WRITABLE_CLICKHOUSE = ("Memory", "Log", "TinyLog", "StripeLog", "Distributed", "Buffer")
# Tables that front others: filled only when named, or the rows would land twice.
_FRONTS = ("Distributed", "Buffer")


class _Source(StrEnum):
    SEQUENCE = "sequence"  # an integer key: start + row number
    REFERENCE = "reference"  # drawn from a parent's keys
    VALUE = "value"  # from its role and type
    NULL = "null"  # always NULL: a broken cycle, a type without values


@dataclass
class _Column:
    name: str
    spelling: str
    vtype: ValueType
    role: str | None
    nullable: bool
    source: _Source = _Source.VALUE
    key: bool = False  # part of a unique key: never NULL
    start: int = 1  # SEQUENCE: the first value


@dataclass
class _Reference:
    columns: tuple[str, ...]
    parent: str  # schema.table
    parent_columns: tuple[str, ...]
    declared: bool
    reason: str
    nullable: bool


@dataclass
class _Plan:
    schema: str
    table: Table
    columns: list[_Column]
    references: list[_Reference]
    unique: list[tuple[str, ...]]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table.name}"

    def column(self, name: str) -> _Column:
        return next(c for c in self.columns if c.name == name)


def writable(table: Table, dialect: Dialect) -> bool:
    """Whether rows can be inserted into the table (not a view, a dictionary...)."""
    if dialect is Dialect.POSTGRES:
        return table.kind in _WRITABLE_POSTGRES
    return table.kind.endswith("MergeTree") or table.kind in _WRITABLE_CLICKHOUSE


def resolve_tables(catalog: Catalog, names: Sequence[str] | None) -> list[str]:
    """The tables named, as `schema.table` (a bare name must be unique in the catalog, or be in
    the default schema), or every writable table when `names` is None. UnknownTableError says
    which name is unknown and lists the tables."""
    if names is None:
        found = [
            f"{s.name}.{t.name}"
            for s in catalog.schemas
            for t in s.tables
            if writable(t, catalog.dialect) and t.kind not in _FRONTS
        ]
        if not found:
            raise MockError(f"no tables to fill in database {catalog.database or '(default)'}")
        return found
    chosen: list[str] = []
    for name in names:
        schema, table = find_table(catalog, name)
        if not writable(table, catalog.dialect):
            raise MockError(f"{schema}.{table.name} is a {table.kind}, not a table rows go into")
        chosen.append(f"{schema}.{table.name}")
    return list(dict.fromkeys(chosen))


def find_table(catalog: Catalog, name: str) -> tuple[str, Table]:
    """The schema and table `name` (`schema.table` or a bare name) means."""
    everything = [(s.name, t) for s in catalog.schemas for t in s.tables]
    if "." in name:
        schema, _, bare = name.partition(".")
        matches = [(s, t) for s, t in everything if s == schema and t.name == bare]
    else:
        matches = [(s, t) for s, t in everything if t.name == name]
        if len(matches) > 1:
            default = catalog.database if catalog.dialect is Dialect.CLICKHOUSE else "public"
            matches = [(s, t) for s, t in matches if s == default] or matches
    if len(matches) == 1:
        return matches[0]
    if matches:
        options = ", ".join(f"{s}.{t.name}" for s, t in matches)
        raise UnknownTableError(f"table {name!r} is ambiguous: name one of {options}")
    known = [f"{s}.{t.name}" for s, t in everything if writable(t, catalog.dialect)]
    listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
    raise UnknownTableError(f"unknown table {name!r}; the tables are: {listed or 'none'}")


def _plans(
    catalog: Catalog,
    selected: list[str],
    enums: Mapping[str, Sequence[str]],
    notes: list[str],
) -> list[_Plan]:
    """Plans for the selected tables (`schema.table`), parents first."""
    joins = catalog.joins or find_joins(catalog)
    plans: dict[str, _Plan] = {}
    for name in selected:
        schema, table = find_table(catalog, name)
        plans[name] = _plan(catalog, schema, table, joins=joins, enums=enums, notes=notes)
    return [plans[name] for name in _order(plans, notes)]


def _plan(
    catalog: Catalog,
    schema: str,
    table: Table,
    *,
    joins: list[Join],
    enums: Mapping[str, Sequence[str]],
    notes: list[str],
) -> _Plan:
    written = [
        c
        for c in table.columns
        if c.default is None or not c.default.startswith(_COMPUTED_DEFAULTS)
    ]
    references = _references(catalog, schema, table, joins, {c.name for c in written})
    covered = {name for r in references for name in r.columns}
    columns: list[_Column] = []
    for column in written:
        planned = _Column(
            name=column.name,
            spelling=column.type,
            vtype=parse_type(column.type, catalog.dialect, enums),
            role=column_role(column.name),
            nullable=column.nullable,
        )
        if column.name in covered:
            planned.source = _Source.REFERENCE
        elif planned.vtype.kind is Kind.UNSUPPORTED:
            what = f"{schema}.{table.name}.{column.name} ({column.type})"
            if column.default is not None:
                notes.append(f"{what} is left to its default")
                continue
            if not column.nullable:
                raise MockError(f"{what}: cannot generate values of this type")
            planned.source = _Source.NULL
            notes.append(f"{what} is left NULL")
        columns.append(planned)
    plan = _Plan(schema, table, columns, references, [])
    plan.unique = _unique_sets(catalog.dialect, plan, joins, covered)
    for key in plan.unique:
        for name in key:
            plan.column(name).key = True
        only = plan.column(key[0])
        if len(key) == 1 and only.source is _Source.VALUE and only.vtype.kind is Kind.INT:
            only.source = _Source.SEQUENCE
    return plan


def _references(
    catalog: Catalog, schema: str, table: Table, joins: list[Join], written: set[str]
) -> list[_Reference]:
    """The table's joins to other tables (declared ones first), one per column, among the
    columns an insert may name."""
    references: list[_Reference] = []
    covered: set[str] = set()
    for join in joins:
        if (join.from_schema, join.from_table) != (schema, table.name):
            continue
        if covered & set(join.from_columns) or not set(join.from_columns) <= written:
            continue
        if catalog.table(join.to_schema, join.to_table) is None:
            continue
        covered |= set(join.from_columns)
        nullable = all((c := table.column(n)) is not None and c.nullable for n in join.from_columns)
        references.append(
            _Reference(
                columns=tuple(join.from_columns),
                parent=f"{join.to_schema}.{join.to_table}",
                parent_columns=tuple(join.to_columns),
                declared=not join.inferred,
                reason=join.reason,
                nullable=nullable,
            )
        )
    return references


def _unique_sets(
    dialect: Dialect, plan: _Plan, joins: list[Join], references: set[str]
) -> list[tuple[str, ...]]:
    """Column groups whose values must not repeat: PostgreSQL's primary key; ClickHouse's when
    it is one column that references nothing (a sort prefix like `customer_id` is no identity);
    a column `id`; and every column group another table's join points at."""
    names = {c.name for c in plan.columns}
    found: list[tuple[str, ...]] = []
    pk = tuple(plan.table.primary_key)
    whole = dialect is Dialect.POSTGRES or (len(pk) == 1 and pk[0] not in references)
    if pk and set(pk) <= names and whole:
        found.append(pk)
    if "id" in names and "id" not in references:
        found.append(("id",))
    for join in joins:
        target = tuple(join.to_columns)
        pointed_at = (join.to_schema, join.to_table) == (plan.schema, plan.table.name)
        if pointed_at and set(target) <= names:
            found.append(target)
    return list(dict.fromkeys(found))


def _order(plans: dict[str, _Plan], notes: list[str]) -> list[str]:
    """Parents before children. A cycle of references is broken at a reference whose columns
    may be NULL (they are left NULL); a cycle without one is refused."""
    while True:
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name, plan in plans.items():
            parents = [r.parent for r in plan.references if r.parent in plans and r.parent != name]
            sorter.add(name, *parents)
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as e:
            _break_cycle(plans, e.args[1], notes)


def _break_cycle(plans: dict[str, _Plan], cycle: list[str], notes: list[str]) -> None:
    # graphlib lists the cycle so that each table is a parent of the next one; read backwards,
    # each table references the next.
    path = " -> ".join(reversed(cycle))
    for parent, child in itertools.pairwise(cycle):
        plan = plans[child]
        for reference in plan.references:
            if reference.parent == parent and reference.nullable:
                plan.references.remove(reference)
                for name in reference.columns:
                    plan.column(name).source = _Source.NULL
                notes.append(
                    f"{child}({', '.join(reference.columns)}) is left NULL: its tables "
                    f"reference each other ({path})"
                )
                return
    raise MockError(
        "these tables reference each other through columns that cannot be NULL, so none can be "
        f"filled first: {path}"
    )


def needed_state(
    catalog: Catalog,
    tables: Sequence[str] | None = None,
    enums: Mapping[str, Sequence[str]] | None = None,
) -> list[StateQuery]:
    """What to read from the database before `generate`: new keys follow the existing ones,
    and references to tables that are not being filled draw from their rows."""
    plans = _plans(catalog, resolve_tables(catalog, tables), enums or {}, [])
    generated = {p.qualified for p in plans}
    maxes: dict[str, list[str]] = {}
    values: dict[str, list[tuple[str, ...]]] = {}
    for plan in plans:
        maxes[plan.qualified] = [c.name for c in plan.columns if c.source is _Source.SEQUENCE]
        values.setdefault(plan.qualified, []).extend(
            key for key in plan.unique if plan.column(key[0]).source is not _Source.SEQUENCE
        )
        for reference in plan.references:
            if reference.parent not in generated:
                values.setdefault(reference.parent, []).append(reference.parent_columns)
    queries = []
    for name in dict.fromkeys([*maxes, *values]):
        schema, _, table = name.partition(".")
        queries.append(
            StateQuery(
                schema,
                table,
                tuple(maxes.get(name, ())),
                tuple(dict.fromkeys(values.get(name, ()))),
            )
        )
    return queries


# -- generation -----------------------------------------------------------------------------------


def generate(
    catalog: Catalog,
    *,
    rows: int | Mapping[str, int],
    tables: Sequence[str] | None = None,
    seed: int = 0,
    existing: Mapping[str, TableState] | None = None,
    enums: Mapping[str, Sequence[str]] | None = None,
    now: datetime | None = None,
    locale: str = "en_US",
) -> MockData:
    """Rows for the tables named (every writable table when None), parents first.

    `rows` is the count for every table, or per table (`schema.table` or a bare name; the
    tables default to its keys). `existing` is what `needed_state` asked to read, by
    `schema.table`: new integer keys continue after it, and references to tables not being
    filled draw from its values. `enums` gives PostgreSQL enum labels by type name. Dates fall
    within the year before `now` (default: today at 00:00 UTC), so a seed gives the same rows
    all day.
    """
    counts: dict[str, int] = {}
    if isinstance(rows, Mapping):
        for name, count in rows.items():
            schema, table = find_table(catalog, name)
            counts[f"{schema}.{table.name}"] = count
        tables = list(counts) if tables is None else tables
    selected = resolve_tables(catalog, tables)
    if not isinstance(rows, Mapping):
        counts = dict.fromkeys(selected, rows)
    if missing := [name for name in selected if name not in counts]:
        raise MockError(f"no row count given for {', '.join(missing)}")
    if any(counts[name] < 0 for name in selected):
        raise MockError("row counts cannot be negative")
    notes: list[str] = []
    plans = _plans(catalog, selected, enums or {}, notes)
    state = existing or {}
    moment = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    fake = Faker(locale)
    done: dict[str, TableData] = {}
    for plan in plans:
        own = state.get(plan.qualified, TableState())
        # Seeded per table and per existing row count: a second run adds new values, and one
        # table's rows do not change with the others chosen.
        rng = random.Random(f"duet-mock:{seed}:{plan.qualified}:{own.rows}")  # noqa: S311 - not for secrets
        fake.seed_instance(rng.getrandbits(64))
        context = _Context(rng, fake, moment, plan.table.name, own.rows)
        generator = _TableGenerator(plan, context, state, done, notes)
        done[plan.qualified] = generator.run(counts[plan.qualified])
    return MockData(tables=list(done.values()), notes=notes)


@dataclass
class _Context:
    rng: random.Random
    fake: Faker
    now: datetime
    table: str
    offset: int  # rows the table already holds: new rows are numbered after them


_Key = tuple[Any, ...]
# Keys first, then references, then plain values, then values derived from others in the row:
# a full name from first and last names, an email from the name, an update after the creation.
_DERIVED = {"person_name": 3, "email": 4, "username": 4, "after": 4, "rare_after": 4, "future": 4}


class _TableGenerator:
    """The rows of one table, given its plan and the tables generated before it."""

    def __init__(
        self,
        plan: _Plan,
        ctx: _Context,
        state: Mapping[str, TableState],
        done: Mapping[str, TableData],
        notes: list[str],
    ) -> None:
        self.plan = plan
        self.ctx = ctx
        self.own = state.get(plan.qualified, TableState())
        self.pools: dict[int, list[_Key]] = {}
        self.self_keys: dict[int, list[_Key]] = {}
        for reference in list(plan.references):
            if reference.parent == plan.qualified:
                known = self.own.key_values.get(reference.parent_columns, ())
                self.self_keys[id(reference)] = [tuple(k) for k in known]
                continue
            pool = _pool(reference, state, done)
            if pool:
                self.pools[id(reference)] = pool
            else:
                _without_parent(plan, reference, notes)
        self.by_column = {name: r for r in plan.references for name in r.columns}
        self.order = sorted(plan.columns, key=_priority)
        self.dealt: dict[int, list[_Key]] = {}
        self.seen: dict[tuple[str, ...], set[_Key]] = {
            key: {tuple(v) for v in self.own.key_values.get(key, ())} for key in plan.unique
        }

    def run(self, count: int) -> TableData:
        plan = self.plan
        for column in plan.columns:
            if column.source is _Source.SEQUENCE:
                column.start = self.own.key_max.get(column.name, 0) + 1
                if count and column.start + count - 1 > column.vtype.high:
                    raise MockError(
                        f"{plan.qualified}.{column.name} ({column.spelling}) cannot hold keys "
                        f"up to {column.start + count - 1}"
                    )
        self._deal(count)
        rows: list[tuple[Any, ...]] = []
        for index in range(count):
            values = self._row(index)
            self._make_unique(values, index)
            for key in plan.unique:
                self.seen[key].add(tuple(values[name] for name in key))
            for reference in plan.references:
                if id(reference) in self.self_keys:
                    own_key = tuple(values[name] for name in reference.parent_columns)
                    self.self_keys[id(reference)].append(own_key)
            rows.append(tuple(values[c.name] for c in plan.columns))
        return TableData(
            schema=plan.schema,
            table=plan.table.name,
            columns=tuple(c.name for c in plan.columns),
            types=tuple(c.spelling for c in plan.columns),
            rows=rows,
        )

    def _deal(self, count: int) -> None:
        """A reference that is also a unique key (a one-to-one, a profile per user) takes each
        parent key once."""
        for reference in self.plan.references:
            pool = self.pools.get(id(reference))
            if pool is None or reference.columns not in self.plan.unique:
                continue
            if count > len(pool):
                raise MockError(
                    f"{self.plan.qualified}({', '.join(reference.columns)}) is unique and "
                    f"references {reference.parent}: {count} rows need as many rows there, "
                    f"it has {len(pool)}"
                )
            self.dealt[id(reference)] = self.ctx.rng.sample(pool, count)

    def _row(self, index: int) -> dict[str, Any]:
        ctx = self.ctx
        values: dict[str, Any] = {}
        derived: dict[str, Any] = {"row": ctx.offset + index + 1}
        for column in self.order:
            if column.name in values:
                continue
            if column.source is _Source.NULL:
                values[column.name] = None
            elif column.source is _Source.SEQUENCE:
                values[column.name] = column.start + index
            elif column.source is _Source.REFERENCE:
                reference = self.by_column[column.name]
                key = self._parent_key(reference, index, values)
                values.update(zip(reference.columns, key, strict=True))
            elif not column.key and column.nullable and ctx.rng.random() < _null_rate(column):
                values[column.name] = None
            else:
                values[column.name] = _value(column, derived, ctx)
        return values

    def _parent_key(self, reference: _Reference, index: int, values: Mapping[str, Any]) -> _Key:
        rng = self.ctx.rng
        nulls = tuple(None for _ in reference.columns)
        if id(reference) in self.dealt:
            return self.dealt[id(reference)][index]
        if id(reference) in self.self_keys:
            earlier = self.self_keys[id(reference)]
            # The first rows of a hierarchy are its roots; a root that cannot be NULL is its
            # own parent.
            if reference.nullable and (not earlier or rng.random() < 0.2):
                return nulls
            if not earlier:
                return tuple(values[name] for name in reference.parent_columns)
            return earlier[rng.randrange(len(earlier))]
        if reference.nullable and rng.random() < NULL_RATE / 2:
            return nulls
        pool = self.pools[id(reference)]
        # A mild skew: some parents (customers, products) have many more children than others.
        return pool[min(len(pool) - 1, int(len(pool) * _skewed(rng, 1.5)))]

    def _make_unique(self, values: dict[str, Any], index: int) -> None:
        """Draw the row's key values again until each unique key is new."""
        for key in self.plan.unique:
            attempts = 0
            while tuple(values[name] for name in key) in self.seen[key]:
                attempts += 1
                if attempts > UNIQUE_ATTEMPTS:
                    raise MockError(
                        f"{self.plan.qualified}: no new value of ({', '.join(key)}) found for "
                        f"row {index + 1}; ask for fewer rows, or fill the tables it references"
                    )
                for name in key:
                    self._redraw(name, values)

    def _redraw(self, name: str, values: dict[str, Any]) -> None:
        column = self.plan.column(name)
        if column.source is _Source.VALUE:
            derived = {"row": self.ctx.rng.getrandbits(32)}
            values[name] = _value(column, derived, self.ctx)
        elif column.source is _Source.REFERENCE and name in self.by_column:
            reference = self.by_column[name]
            pool = self.pools.get(id(reference)) or self.self_keys.get(id(reference)) or []
            if pool:
                parent = pool[self.ctx.rng.randrange(len(pool))]
                values.update(zip(reference.columns, parent, strict=True))


def _priority(column: _Column) -> int:
    if column.source is _Source.SEQUENCE or (column.key and column.source is _Source.VALUE):
        return 0
    if column.source is _Source.REFERENCE:
        return 1
    return _DERIVED.get(column.role or "", 2)


def _null_rate(column: _Column) -> float:
    return 0.85 if column.role == "rare_after" else NULL_RATE


def _pool(
    reference: _Reference, state: Mapping[str, TableState], done: Mapping[str, TableData]
) -> list[_Key]:
    """The parent keys a reference may take: the parent's new rows when it is being filled,
    else the rows it holds."""
    parent = done.get(reference.parent)
    if parent is not None:
        positions = [parent.columns.index(c) for c in reference.parent_columns]
        keys = (tuple(row[i] for i in positions) for row in parent.rows)
        return [k for k in dict.fromkeys(keys) if None not in k]
    values = state.get(reference.parent, TableState()).key_values.get(reference.parent_columns)
    return [tuple(v) for v in values or () if None not in v]


def _without_parent(plan: _Plan, reference: _Reference, notes: list[str]) -> None:
    """A reference to a table with no rows to point at: NULL if it may be, free values if the
    join was only inferred, else refused (the database would refuse the rows)."""
    what = f"{plan.qualified}({', '.join(reference.columns)})"
    if reference.nullable:
        source = _Source.NULL
        notes.append(f"{what} is left NULL: {reference.parent} has no rows to reference")
    elif not reference.declared:
        source = _Source.VALUE
        notes.append(
            f"{what} does not match {reference.parent}, which has no rows ({reference.reason})"
        )
    else:
        raise MockError(
            f"{what} references {reference.parent}, which has no rows and is not being filled: "
            f"fill it too (--table {reference.parent})"
        )
    for name in reference.columns:
        plan.column(name).source = source
    plan.references.remove(reference)


# -- values ---------------------------------------------------------------------------------------


def _value(column: _Column, derived: dict[str, Any], ctx: _Context) -> Any:
    vtype = column.vtype
    if vtype.kind is Kind.ENUM:
        return _weighted(vtype.labels, ctx.rng)
    if vtype.kind is Kind.ARRAY:
        assert vtype.element is not None
        element = _Column(column.name, column.spelling, vtype.element, column.role, False)
        return [_scalar(element, {"row": 0}, ctx) for _ in range(ctx.rng.randint(0, 4))]
    return _scalar(column, derived, ctx)


def _scalar(column: _Column, derived: dict[str, Any], ctx: _Context) -> Any:
    vtype, role = column.vtype, column.role
    if role == "identifier":
        # An id that references nothing the catalog knows: a session token, an external id.
        if vtype.kind is Kind.STRING:
            return _fit(f"{ctx.rng.getrandbits(64):016x}", vtype)
        if vtype.kind is Kind.INT:
            return _fit(ctx.rng.randint(1, 100_000), vtype)
    elif role is not None and _fits(role, vtype):
        return _fit(_role_value(role, column, derived, ctx), vtype)
    return _fit(_typed_value(vtype, ctx), vtype)


def _role_value(role: str, column: _Column, derived: dict[str, Any], ctx: _Context) -> Any:
    if role.startswith("category:"):
        values = _category_values(role, ctx.table)
        if column.vtype.kind is Kind.INT:
            return _weighted(range(len(values)), ctx.rng)
        return _weighted(values, ctx.rng)
    if _family(role) is Family.TIME:
        return _time_value(role, derived, ctx, column.vtype.earliest)
    if role in _FAKER:
        value = getattr(ctx.fake, _FAKER[role])()
    else:
        value = _MAKERS[role](column, derived, ctx)
    if role in ("first_name", "last_name", "person_name", "name"):
        derived.setdefault(role, value)
    return value


def _time_value(role: str, derived: dict[str, Any], ctx: _Context, earliest: date) -> datetime:
    rng, now = ctx.rng, ctx.now
    created: datetime | None = derived.get("created")
    if role == "future":
        return (created or now) + timedelta(days=rng.uniform(1, 365))
    if role == "birth":
        # Ages 18 to 85, within what the type holds (ClickHouse's Date starts in 1970).
        oldest = min(85 * 365.25, (now.date() - earliest).days - 1)
        return now - timedelta(days=rng.uniform(min(18 * 365.25, oldest), oldest))
    if role in ("after", "rare_after") and created is not None:
        return created + (now - created) * _skewed(rng, 2)
    # Spread over the window, denser lately, as a growing product's rows are.
    moment = now - RECENT * _skewed(rng, 1.5)
    if role == "created":
        derived["created"] = moment
    return moment


def _skewed(rng: random.Random, power: float) -> float:
    """A number in [0, 1), more often small the larger `power` is."""
    return math.pow(rng.random(), power)


def _weighted(values: Sequence[Any], rng: random.Random) -> Any:
    """A value from a categorical set, earlier ones more common, as in real data."""
    return rng.choices(values, weights=range(len(values), 0, -1))[0]


def _lognormal(ctx: _Context, median: float, spread: float) -> float:
    return ctx.rng.lognormvariate(math.log(median), spread)


# Roles that one faker provider fills.
_FAKER = {
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone_number",
    "city": "city",
    "country": "country",
    "country_code": "country_code",
    "region": "state",
    "postcode": "postcode",
    "address": "street_address",
    "company": "company",
    "url": "url",
    "path": "uri_path",
    "domain": "domain_name",
    "user_agent": "user_agent",
    "currency": "currency_code",
    "color": "color_name",
    "job": "job",
    "language": "language_code",
    "timezone": "timezone",
    "slug": "slug",
    "tags": "word",
    "file_name": "file_name",
}
# Money by the column's name: (word, median, spread of a log-normal), the first match wins.
_MONEY = (
    ("salary", 60_000.0, 0.4),
    ("income", 55_000.0, 0.5),
    ("budget", 5_000.0, 1.0),
    ("balance", 400.0, 1.2),
    ("tax", 4.0, 0.7),
    ("fee", 4.0, 0.7),
    ("discount", 5.0, 0.7),
    ("shipping", 6.0, 0.5),
    ("price", 25.0, 0.9),
    ("cost", 25.0, 0.9),
)


def _money(column: _Column, derived: dict[str, Any], ctx: _Context) -> float:
    name = column.name.lower()
    median, spread = next(((m, s) for w, m, s in _MONEY if w in name), (60.0, 1.0))
    return _lognormal(ctx, median, spread)


def _email(column: _Column, derived: dict[str, Any], ctx: _Context) -> str:
    # Numbered by row, so emails are unique, also after the rows already there; the domains
    # are reserved for examples, so no mail can reach anyone.
    return f"{_local_part(derived, ctx)}.{derived['row']}@{ctx.fake.safe_domain_name()}"


def _username(column: _Column, derived: dict[str, Any], ctx: _Context) -> str:
    return f"{_local_part(derived, ctx).replace('.', '_')}{derived['row']}"


def _local_part(derived: dict[str, Any], ctx: _Context) -> str:
    first, last = derived.get("first_name"), derived.get("last_name")
    if first is None or last is None:
        parts = str(derived.get("person_name") or derived.get("name") or ctx.fake.name()).split()
        first, last = parts[0], parts[-1]
    return re.sub(r"[^a-z0-9.]", "", f"{first}.{last}".lower()) or "user"


def _person_name(column: _Column, derived: dict[str, Any], ctx: _Context) -> str:
    if "first_name" in derived and "last_name" in derived:
        return f"{derived['first_name']} {derived['last_name']}"
    return ctx.fake.name()


# What a `name` column names, by words in the table's name (or the column's prefix).
_NAMED_THINGS = _table_of("""
product: product item sku article
company: compan organi vendor supplier merchant brand tenant
city: city cities
country: countr
word: categor tag genre department
phrase: campaign project team plan
store: store shop warehouse location site
""")


def _name(column: _Column, derived: dict[str, Any], ctx: _Context) -> str:
    """`name` or `<thing>_name`: a person's unless the table or the prefix names a product, a
    company, a city..."""
    lowered = column.name.lower()
    subject = lowered.removesuffix("_name") if lowered != "name" else ctx.table.lower()
    thing = next((t for t, words in _NAMED_THINGS.items() if any(w in subject for w in words)), "")
    fake = ctx.fake
    if thing == "product":
        material = ctx.rng.choice(_MATERIALS)
        noun = ctx.rng.choice(_PRODUCT_NOUNS)
        return f"{fake.safe_color_name().capitalize()} {material} {noun}"
    named: dict[str, Callable[[], str]] = {
        "company": fake.company,
        "city": fake.city,
        "country": fake.country,
        "word": lambda: fake.word().capitalize(),
        "phrase": fake.catch_phrase,
        "store": lambda: f"{fake.city()} store",
    }
    return named[thing]() if thing in named else _person_name(column, derived, ctx)


_PRODUCT_NOUNS = ("Lamp", "Chair", "Mug", "Backpack", "Jacket", "Sneakers", "Notebook", "Watch")
_MATERIALS = ("Cotton", "Leather", "Steel", "Wooden", "Ceramic", "Wool", "Bamboo", "Canvas")


def _json(column: _Column | None, derived: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    rng = ctx.rng
    return {
        "source": _weighted(_CATEGORIES["channel"], rng),
        "campaign": ctx.fake.word(),
        "score": rng.randint(0, 100),
        "tags": [ctx.fake.word() for _ in range(rng.randint(0, 3))],
    }


def _ip(column: _Column, derived: dict[str, Any], ctx: _Context) -> Any:
    if column.vtype.kind is Kind.IPV6 or column.name.lower().endswith("v6"):
        return ipaddress.IPv6Address(ctx.fake.ipv6())
    return ipaddress.IPv4Address(ctx.fake.ipv4_public())


def _uuid(column: _Column, derived: dict[str, Any], ctx: _Context) -> uuid.UUID:
    return uuid.UUID(int=ctx.rng.getrandbits(128), version=4)


_Maker = Callable[[_Column, dict[str, Any], _Context], Any]


def _chance(probability: float) -> _Maker:
    def maker(column: _Column, derived: dict[str, Any], ctx: _Context) -> bool:
        return ctx.rng.random() < probability

    return maker


def _number(make: Callable[[_Context], Any]) -> _Maker:
    def maker(column: _Column, derived: dict[str, Any], ctx: _Context) -> Any:
        return make(ctx)

    return maker


_MAKERS: dict[str, _Maker] = {
    "email": _email,
    "username": _username,
    "person_name": _person_name,
    "name": _name,
    "ip": _ip,
    "money": _money,
    "json": _json,
    "uuid": _uuid,
    "quantity": _number(lambda c: 1 + int(_lognormal(c, 1.5, 0.8))),
    "age": _number(lambda c: int(c.rng.triangular(18, 85, 34))),
    "rating": _number(lambda c: _weighted((5, 4, 3, 1, 2), c.rng)),
    "score": _number(lambda c: round(c.rng.betavariate(5, 2) * 100)),
    "year": _number(lambda c: c.now.year - int(_skewed(c.rng, 2) * 30)),
    "latitude": _number(lambda c: float(c.fake.latitude())),
    "longitude": _number(lambda c: float(c.fake.longitude())),
    "ratio": _number(lambda c: c.rng.betavariate(2, 5)),
    "duration": _number(lambda c: _lognormal(c, 250.0, 1.0)),
    "title": _number(lambda c: c.fake.sentence(nb_words=4).rstrip(".")),
    "text": _number(lambda c: c.fake.sentence(nb_words=10)),
    "sku": _number(lambda c: f"SKU-{c.rng.getrandbits(40):010X}"),
    "hex": _number(lambda c: f"{c.rng.getrandbits(256):064x}"),
    "true_mostly": _chance(0.85),
    "false_mostly": _chance(0.05),
    "bool": _chance(0.5),
}


def _typed_value(vtype: ValueType, ctx: _Context) -> Any:
    """A plausible value from the type alone."""
    rng, kind = ctx.rng, vtype.kind
    simple: dict[Kind, Callable[[], Any]] = {
        Kind.INT: lambda: rng.randint(max(vtype.low, 0), min(vtype.high, 1000)),
        Kind.FLOAT: lambda: round(rng.uniform(0, 1000), 3),
        Kind.DECIMAL: lambda: _lognormal(ctx, 50.0, 1.0),
        Kind.BOOL: lambda: rng.random() < 0.5,
        Kind.DATE: lambda: ctx.now - RECENT * rng.random(),
        Kind.DATETIME: lambda: ctx.now - RECENT * rng.random(),
        Kind.TIME: lambda: time(rng.randrange(24), rng.randrange(60), rng.randrange(60)),
        Kind.UUID: lambda: uuid.UUID(int=rng.getrandbits(128), version=4),
        Kind.JSON: lambda: _json(None, {}, ctx),
        Kind.IPV4: lambda: ipaddress.IPv4Address(ctx.fake.ipv4_public()),
        Kind.IPV6: lambda: ipaddress.IPv6Address(ctx.fake.ipv6()),
    }
    if kind in simple:
        return simple[kind]()
    if kind is Kind.STRING and vtype.fixed and vtype.length is not None:
        return f"{rng.getrandbits(4 * vtype.length):0{vtype.length}x}"
    if kind is Kind.STRING:
        return ctx.fake.word()
    raise MockError(f"cannot generate a value of kind {kind}")


def _fit(raw: Any, vtype: ValueType) -> Any:
    """`raw` as the column's type holds it: clamped into its range, rounded to its scale, cut
    to its length."""
    kind = vtype.kind
    if kind is Kind.INT:
        number = raw.timestamp() if isinstance(raw, datetime) else raw
        return max(vtype.low, min(vtype.high, round(float(number))))
    if kind is Kind.FLOAT:
        return float(raw)
    if kind is Kind.DECIMAL:
        return _decimal(float(raw), vtype)
    if kind is Kind.STRING:
        return _string(raw, vtype)
    if kind is Kind.DATE:
        day = raw.date() if isinstance(raw, datetime) else raw
        return max(day, vtype.earliest)
    if kind is Kind.DATETIME:
        return _datetime(raw, vtype)
    if kind is Kind.BOOL:
        return bool(raw)
    return raw


def _decimal(value: float, vtype: ValueType) -> Decimal:
    # Decimal256 has 76 digits, beyond the default context's 28.
    with localcontext(prec=100):
        step = Decimal(1).scaleb(-vtype.scale)
        largest = Decimal(10) ** (vtype.precision - vtype.scale) - step
        number = Decimal(repr(abs(value))).quantize(step, rounding=ROUND_DOWN)
        return min(number, largest)


def _string(raw: Any, vtype: ValueType) -> str:
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, datetime | date):
        text = raw.isoformat()
    elif isinstance(raw, float):
        text = f"{raw:.2f}"
    elif isinstance(raw, dict | list):
        text = json.dumps(raw, sort_keys=True)
    else:
        text = str(raw)
    if vtype.length is None:
        return text
    if vtype.fixed:
        # FixedString(n) holds n bytes.
        return text.encode()[: vtype.length].decode(errors="ignore")
    return text[: vtype.length]


def _datetime(raw: Any, vtype: ValueType) -> datetime:
    moment = raw if isinstance(raw, datetime) else datetime.combine(raw, time(), UTC)
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    moment = max(moment.astimezone(UTC), datetime.combine(vtype.earliest, time(), UTC))
    if vtype.scale < 6:
        unit = 10 ** (6 - vtype.scale)
        moment = moment.replace(microsecond=moment.microsecond // unit * unit)
    return moment if vtype.aware else moment.replace(tzinfo=None)
