"""The SQL firewall of the query agent: model-written SQL in, a verdict and the SQL to run out.

The first of two independent guards (docs/query-firewall.md). This one refuses, before anything
reaches a database, every statement that is not one read-only query; the second is the
database's own read-only user (ClickHouse profile `readonly=1`, PostgreSQL
`default_transaction_read_only`). Either should hold alone, so a hole in one is not a breach.

An allow-list over sqlglot's syntax tree, never a pattern match on text: one statement shaped
SELECT, WITH ... SELECT or a set operation (or a plain EXPLAIN of one), and every node of the
tree inspected wherever it sits. What runs is never the caller's text but the checked tree
printed again by sqlglot, comments dropped and a row cap added, then parsed and checked once
more: a trick that makes sqlglot and the server read one text differently has to survive a
canonical printing to matter.

Each reason starts with a `Category` ("function not allowed: pg_read_file"), stable enough to
count blocked queries by.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import sqlglot
from sqlglot import Token, TokenType, exp
from sqlglot.errors import ParseError, SqlglotError, TokenError

DEFAULT_MAX_ROWS = 1000
# A model's query is a few KiB; parsing megabytes would hold a worker for seconds.
MAX_SQL_CHARS = 100_000


class Dialect(StrEnum):
    """The dialects the firewall reads; the values are sqlglot's names for them."""

    CLICKHOUSE = "clickhouse"
    POSTGRES = "postgres"


class Category(StrEnum):
    """Why a statement was refused, in a word or three: the start of every reason."""

    EMPTY = "empty"
    SEVERAL = "several statements"
    TOO_LONG = "too long"
    UNPARSABLE = "does not parse"
    NOT_A_QUERY = "not a query"
    EXPLAIN_OPTION = "explain option not allowed"
    WRITES = "writes data"
    ROW_LOCK = "row lock"
    CLAUSE = "clause not allowed"
    TABLE_FUNCTION = "table function not allowed"
    FUNCTION = "function not allowed"
    CATALOG = "catalog not allowed"
    ROUND_TRIP = "does not round-trip"


@dataclass(frozen=True)
class Verdict:
    """Whether a statement may run, why not, and when it may, the SQL to run in its place."""

    allowed: bool
    reason: str | None = None
    sql: str | None = None

    @property
    def category(self) -> Category | None:
        return None if self.reason is None else Category(self.reason.partition(":")[0])


def check(sql: str, dialect: Dialect, *, max_rows: int = DEFAULT_MAX_ROWS) -> Verdict:
    """The verdict on `sql`: allowed with the SQL to run (at most `max_rows` rows), or refused
    with a reason. Never raises on any text."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, not {max_rows}")
    dialect = Dialect(dialect)
    try:
        return Verdict(allowed=True, sql=_checked(sql, dialect, max_rows))
    except _RefusedError as refusal:
        return _refused(refusal.category, refusal.detail)
    except ParseError as e:
        return _refused(Category.UNPARSABLE, _parse_error(e))
    except TokenError as e:
        return _refused(Category.UNPARSABLE, _first_line(str(e)))
    except RecursionError:
        return _refused(Category.UNPARSABLE, "nested too deeply")
    except Exception as e:
        # A firewall fails closed: anything else that goes wrong inside sqlglot refuses.
        return _refused(Category.UNPARSABLE, f"the parser failed ({type(e).__name__})")


# -- what each dialect refuses --------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    """What one dialect refuses beyond the shape every dialect shares. Names are casefolded."""

    # Refused wherever a call appears: in FROM, in an expression, qualified or quoted.
    denied_functions: frozenset[str]
    denied_function_prefixes: tuple[str, ...]
    # The only functions allowed in FROM; None: any function not denied.
    table_functions: frozenset[str] | None
    # (schema, name) of a relation -> the name to report when it is refused, else None.
    catalog: Callable[[str, str], str | None]
    # Whether an expression can name a table (ClickHouse `x IN system.users`).
    tables_in_expressions: bool
    # The EXPLAIN options after the keyword -> the normalised prefix and the query's tokens.
    explain: Callable[[list[Token]], tuple[str, list[Token]]]


def _names(*groups: str) -> frozenset[str]:
    """The names in groups of space-separated words (a group to a comment)."""
    return frozenset(name for group in groups for name in group.split())


# Table functions that only make up rows. Every other one reaches a file, a URL, an object store,
# another server or a process, or reads tables named by strings the catalog check cannot see
# (merge, loop, view, dictionary): an allow-list, because each ClickHouse release adds some.
_CLICKHOUSE_TABLE_FUNCTIONS = _names(
    "numbers numbers_mt zeros zeros_mt generate_series generateseries generaterandom"
)
# Refused in any position too (`x IN url(...)`, the scalar `file()`), by name or prefix.
_CLICKHOUSE_DENIED_FUNCTIONS = _names(
    # files, URLs, object stores, other servers and databases, processes
    "file filecluster url urlcluster input executable remote remotesecure cluster "
    "clusterallreplicas mysql postgresql mongodb redis sqlite jdbc odbc gcs cosn oss hive "
    "ytsaurus arrowflight",
    # tables named by a pattern or read forever
    "merge loop",
    # a worker held for nothing
    "sleep sleepeachrow",
)
_CLICKHOUSE_DENIED_PREFIXES = tuple(
    sorted(_names("s3 hdfs azureblobstorage deltalake iceberg hudi paimon datalake"))
)
# The `system` tables a query may read: schema catalogs and row generators. The rest hold users,
# grants, quotas, other sessions' queries, logs, Keeper's tree, named collections (credentials)
# and server internals, and each release adds more: an allow-list.
_CLICKHOUSE_SYSTEM_TABLES = _names(
    "databases tables columns data_skipping_indices functions table_functions table_engines "
    "data_type_families formats time_zones collations",
    "one numbers numbers_mt zeros zeros_mt",
)

_POSTGRES_DENIED_FUNCTIONS = _names(
    # Sequences: nextval and setval write; currval and lastval can never succeed where nextval
    # is refused, so a clear refusal beats a runtime error.
    "nextval setval currval lastval",
    # set_config can switch default_transaction_read_only off.
    "set_config",
    # Server files and logs.
    "pg_stat_file pg_current_logfile pg_logdir_ls loread lowrite",
    # Other sessions and the server's state.
    "pg_cancel_backend pg_terminate_backend pg_reload_conf pg_rotate_logfile pg_promote "
    "pg_switch_wal pg_backup_start pg_backup_stop pg_start_backup pg_stop_backup "
    "pg_export_snapshot pg_import_system_collations pg_log_backend_memory_contexts "
    "pg_log_standby_snapshot pg_notify pg_prewarm pg_stat_statements_reset "
    "pg_truncate_visibility_map gin_clean_pending_list",
    # SQL given as text, which the firewall cannot see.
    "ts_stat ts_rewrite",
    # The functions behind the refused catalogs.
    "pg_stat_get_activity pg_stat_statements pg_hba_file_rules pg_ident_file_mappings "
    "pg_show_all_file_settings pg_config",
)
_POSTGRES_DENIED_PREFIXES = tuple(
    sorted(
        _names(
            # server files and directories; adminpack's writes; large objects (lo_import...)
            "pg_read_ pg_ls_ pg_file_ lo_",
            # other servers; SQL run by a background worker
            "dblink pg_background",
            # SQL given as text, or tables named by strings
            "query_to_xml cursor_to_xml table_to_xml schema_to_xml database_to_xml",
            # sleeps and locks held past the query
            "pg_sleep pg_advisory_ pg_try_advisory_",
            # transaction ids assigned; replication slots and origins; WAL replay; statistics
            # reset; index ranges summarised (a write); other sessions' queries
            "txid_ pg_current_xact_id pg_create_ pg_drop_ pg_copy_ pg_logical_ pg_replication_ "
            "pg_wal_replay_ pg_stat_reset brin_ pg_stat_get_backend",
        )
    )
)
# Relations that hold credentials, accounts, other sessions' queries, server configuration or
# raw data behind the privilege system; refused in any schema. Schema catalogs (pg_class,
# pg_attribute, information_schema) stay readable: a deny-list, since those are most of them.
_POSTGRES_SENSITIVE_RELATIONS = _names(
    # accounts, their settings and credentials (user mappings hold remote passwords)
    "pg_authid pg_shadow pg_user pg_roles pg_group pg_auth_members pg_db_role_setting "
    "pg_user_mapping pg_user_mappings user_mappings user_mapping_options pg_subscription",
    # other sessions and the server
    "pg_stat_activity pg_stat_statements pg_stat_statements_info pg_stat_replication "
    "pg_stat_wal_receiver pg_stat_subscription pg_stat_ssl pg_stat_gssapi pg_locks "
    "pg_prepared_xacts pg_replication_slots pg_backend_memory_contexts pg_shmem_allocations",
    # configuration files
    "pg_hba_file_rules pg_ident_file_mappings pg_file_settings pg_config",
    # raw data that skips table privileges
    "pg_largeobject pg_largeobject_metadata pg_statistic pg_statistic_ext_data",
)

# EXPLAIN without ANALYZE plans the query and never runs it; these options only shape the plan's
# text. ANALYZE runs it, and BUFFERS, WAL, TIMING and SERIALIZE only mean something with it.
_POSTGRES_EXPLAIN_FLAGS = _names("COSTS GENERIC_PLAN MEMORY SETTINGS SUMMARY VERBOSE")
_POSTGRES_EXPLAIN_FORMATS = _names("JSON TEXT XML YAML")
_BOOLEANS = _names("0 1 FALSE OFF ON TRUE")
# ClickHouse's EXPLAIN never runs the query. TABLE OVERRIDE reads the schema of a table function
# (mysql, postgresql...); CURRENT TRANSACTION is not about a query.
_CLICKHOUSE_EXPLAIN_KINDS = _names("AST ESTIMATE PIPELINE PLAN SYNTAX")
_CLICKHOUSE_EXPLAIN_REFUSED = _names("CURRENT TABLE")
# Display options of the EXPLAIN kinds; none of them is a query setting.
_CLICKHOUSE_EXPLAIN_SETTINGS = _names(
    "header description indexes actions json projections sorting distributed keep_logical_steps",
    "graph compact optimize oneline",
    "run_passes dump_passes passes dump_tree dump_ast run_query_tree_passes query_tree_passes",
)


def _clickhouse_catalog(schema: str, name: str) -> str | None:
    return (
        f"system.{name}" if schema == "system" and name not in _CLICKHOUSE_SYSTEM_TABLES else None
    )


def _postgres_catalog(_schema: str, name: str) -> str | None:
    return name if name in _POSTGRES_SENSITIVE_RELATIONS else None


def _clickhouse_explain(tokens: list[Token]) -> tuple[str, list[Token]]:
    """`EXPLAIN [AST | SYNTAX | QUERY TREE | PLAN | PIPELINE | ESTIMATE] [name = number, ...]`."""
    words = ["EXPLAIN"]
    rest = tokens
    if _word(rest, 0) in _CLICKHOUSE_EXPLAIN_REFUSED:
        raise _RefusedError(Category.EXPLAIN_OPTION, _word(rest, 0))
    if _word(rest, 0) == "QUERY" and _word(rest, 1) == "TREE":
        words.append("QUERY TREE")
        rest = rest[2:]
    elif _word(rest, 0) in _CLICKHOUSE_EXPLAIN_KINDS:
        words.append(_word(rest, 0))
        rest = rest[1:]
    settings = []
    while len(rest) >= 3 and rest[1].token_type is TokenType.EQ:
        name, value = rest[0].text.lower(), rest[2]
        if name not in _CLICKHOUSE_EXPLAIN_SETTINGS or value.token_type is not TokenType.NUMBER:
            raise _RefusedError(Category.EXPLAIN_OPTION, f"{rest[0].text} = {value.text}")
        settings.append(f"{name} = {value.text}")
        rest = rest[4:] if _word(rest, 3) == "," else rest[3:]
    if settings:
        words.append(", ".join(settings))
    return " ".join(words), rest


def _postgres_explain(tokens: list[Token]) -> tuple[str, list[Token]]:
    """`EXPLAIN [VERBOSE]` or `EXPLAIN (option [value], ...)`, without ANALYZE and its kin."""
    options = []
    rest = tokens
    if rest and rest[0].token_type is TokenType.L_PAREN:
        close = next((i for i, t in enumerate(rest) if t.token_type is TokenType.R_PAREN), None)
        if close is None:
            raise _RefusedError(Category.UNPARSABLE, "EXPLAIN options are not closed")
        for _, group in itertools.groupby(rest[1:close], lambda t: t.token_type is TokenType.COMMA):
            option = [t.text.upper() for t in group]
            if option != [","]:
                options.append(_postgres_explain_option(option))
        rest = rest[close + 1 :]
    else:
        while _word(rest, 0) in {"ANALYZE", "ANALYSE", "VERBOSE"}:
            options.append(_postgres_explain_option([_word(rest, 0)]))
            rest = rest[1:]
    prefix = f"EXPLAIN ({', '.join(options)})" if options else "EXPLAIN"
    return prefix, rest


def _postgres_explain_option(words: list[str]) -> str:
    name, values = words[0], words[1:]
    if name == "FORMAT" and len(values) == 1 and values[0] in _POSTGRES_EXPLAIN_FORMATS:
        return f"FORMAT {values[0]}"
    if name in _POSTGRES_EXPLAIN_FLAGS and (
        not values or (len(values) == 1 and values[0] in _BOOLEANS)
    ):
        return " ".join(words)
    raise _RefusedError(Category.EXPLAIN_OPTION, " ".join(words))


def _word(tokens: list[Token], index: int) -> str:
    return tokens[index].text.upper() if index < len(tokens) else ""


_RULES = {
    Dialect.CLICKHOUSE: _Rules(
        denied_functions=_CLICKHOUSE_DENIED_FUNCTIONS,
        denied_function_prefixes=_CLICKHOUSE_DENIED_PREFIXES,
        table_functions=_CLICKHOUSE_TABLE_FUNCTIONS,
        catalog=_clickhouse_catalog,
        tables_in_expressions=True,
        explain=_clickhouse_explain,
    ),
    Dialect.POSTGRES: _Rules(
        denied_functions=_POSTGRES_DENIED_FUNCTIONS,
        denied_function_prefixes=_POSTGRES_DENIED_PREFIXES,
        table_functions=None,
        catalog=_postgres_catalog,
        tables_in_expressions=False,
        explain=_postgres_explain,
    ),
}
_ENGINES = {dialect: sqlglot.Dialect.get_or_raise(dialect.value) for dialect in Dialect}

# -- the checks -----------------------------------------------------------------------------------

_QUERY_STARTS = frozenset({TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN})
# Statements that sqlglot can nest in a query (a data-modifying CTE) or fall back to.
_STATEMENTS = (
    exp.DML,
    exp.DDL,
    exp.Alter,
    exp.Command,
    exp.Commit,
    exp.Drop,
    exp.Grant,
    exp.Rollback,
    exp.Set,
    exp.Transaction,
    exp.TruncateTable,
    exp.Use,
)
# The nodes _inspect looks at; the rest it skips, remembering per class which those are.
_INSPECTED = (*_STATEMENTS, exp.Into, exp.Lock, exp.Query, exp.Table, exp.Func, exp.Column)
_INERT: dict[type, bool] = {}
# Calls sqlglot does not know, which keep the name they were written with.
_NAMED_CALLS = (exp.Anonymous, exp.AnonymousAggFunc, exp.ParameterizedAgg)
# An alias no model writes, for the subquery a row cap wraps.
_WRAPPED = "_duet_limited"


class _RefusedError(Exception):
    def __init__(self, category: Category, detail: str) -> None:
        super().__init__(f"{category}: {detail}")
        self.category = category
        self.detail = detail


def _refused(category: Category, detail: str) -> Verdict:
    return Verdict(allowed=False, reason=f"{category}: {detail}")


def _checked(sql: str, dialect: Dialect, max_rows: int) -> str:
    """The SQL to run in place of `sql`; raises _RefusedError (or sqlglot's errors) to refuse it."""
    if len(sql) > MAX_SQL_CHARS:
        raise _RefusedError(Category.TOO_LONG, f"{len(sql)} characters, at most {MAX_SQL_CHARS}")
    rules, engine = _RULES[dialect], _ENGINES[dialect]
    tokens = engine.tokenize(sql)
    explain = None
    if tokens and tokens[0].token_type is TokenType.COMMAND and _word(tokens, 0) == "EXPLAIN":
        # sqlglot reads the rest of an EXPLAIN as one opaque string: tokenize it as SQL.
        sql = sql[tokens[0].end + 1 :]
        explain, statement = rules.explain(_one_statement(engine.tokenize(sql)))
    else:
        statement = _one_statement(tokens)
    query = _parse_query(statement, sql, dialect)
    _inspect(query, rules)
    if explain is None:
        query = _cap_rows(query, dialect, max_rows)
    printed = _print(query, dialect)
    _recheck(printed, dialect, None if explain else max_rows)
    return f"{explain} {printed}" if explain else printed


def _one_statement(tokens: list[Token]) -> list[Token]:
    statements = [
        list(group)
        for is_semicolon, group in itertools.groupby(
            tokens, lambda t: t.token_type is TokenType.SEMICOLON
        )
        if not is_semicolon
    ]
    if not statements:
        raise _RefusedError(Category.EMPTY, "no statement")
    if len(statements) > 1:
        raise _RefusedError(Category.SEVERAL, f"{len(statements)}, one query at a time")
    return statements[0]


def _parse_query(tokens: list[Token], sql: str, dialect: Dialect) -> exp.Query:
    if not tokens:
        raise _RefusedError(Category.EMPTY, "no query after EXPLAIN")
    if tokens[0].token_type not in _QUERY_STARTS:
        raise _RefusedError(Category.NOT_A_QUERY, tokens[0].text.upper())
    # sqlglot does not read INTO OUTFILE; name it rather than call it unparsable.
    for first, second in itertools.pairwise(tokens):
        if first.token_type is TokenType.INTO and second.text.upper() == "OUTFILE":
            raise _RefusedError(Category.WRITES, "INTO OUTFILE")
    trees = [tree for tree in _ENGINES[dialect].parser().parse(tokens, sql) if tree is not None]
    if len(trees) != 1:
        raise _RefusedError(Category.SEVERAL, f"{len(trees)}, one query at a time")
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        raise _RefusedError(Category.NOT_A_QUERY, _kind(tree))
    return tree


def _inspect(tree: exp.Expr, rules: _Rules) -> None:
    """Refuse the first node, anywhere in the tree, that writes, locks, loosens the session's
    limits, reaches outside the database or reads a sensitive catalog."""
    for node in tree.walk():
        if _inert(type(node)):
            continue
        if isinstance(node, exp.DML):
            raise _RefusedError(Category.WRITES, _kind(node))
        if isinstance(node, _STATEMENTS):
            raise _RefusedError(Category.NOT_A_QUERY, _kind(node))
        if isinstance(node, exp.Into):
            raise _RefusedError(Category.WRITES, "SELECT INTO")
        if isinstance(node, exp.Lock):
            raise _RefusedError(Category.ROW_LOCK, _lock_name(node))
        if isinstance(node, exp.Query):
            _inspect_clauses(node)
        elif isinstance(node, exp.Table):
            _inspect_table(node, rules)
        elif isinstance(node, exp.Func):
            _inspect_function(node, rules)
        elif isinstance(node, exp.Column) and rules.tables_in_expressions:
            _inspect_column(node, rules)


def _inert(kind: type) -> bool:
    """Whether nodes of a class (identifiers, literals, operators: most of a tree) need no look."""
    inert = _INERT.get(kind)
    if inert is None:
        inert = _INERT[kind] = not issubclass(kind, _INSPECTED)
    return inert


def _inspect_clauses(query: exp.Query) -> None:
    # SETTINGS: the readonly=1 profile refuses every change anyway, and the settings that loosen
    # limits (readonly, max_execution_time, max_result_rows, result_overflow_mode...) are too many
    # to list: none are allowed. FORMAT: the engine picks the wire format it decodes.
    for clause in ("settings", "format"):
        if query.args.get(clause):
            raise _RefusedError(Category.CLAUSE, clause.upper())


def _inspect_table(table: exp.Table, rules: _Rules) -> None:
    source = table.this
    if isinstance(source, exp.Func):
        allowed = rules.table_functions
        if allowed is not None and not _function_names(source) & allowed:
            raise _RefusedError(Category.TABLE_FUNCTION, _written_name(source))
        return
    refused = rules.catalog(table.db.casefold(), table.name.casefold())
    if refused is not None:
        raise _RefusedError(Category.CATALOG, refused)


def _inspect_function(func: exp.Func, rules: _Rules) -> None:
    for name in _function_names(func):
        if name in rules.denied_functions or name.startswith(rules.denied_function_prefixes):
            raise _RefusedError(Category.FUNCTION, _written_name(func))


def _inspect_column(column: exp.Column, rules: _Rules) -> None:
    # `x IN system.users` reads the table, which sqlglot sees as a column `users` of `system`.
    parts = [part.name.casefold() for part in column.parts]
    for schema, name in itertools.pairwise(parts):
        refused = rules.catalog(schema, name)
        if refused is not None:
            raise _RefusedError(Category.CATALOG, refused)


def _function_names(func: exp.Func) -> set[str]:
    """The names a call may have been written with: as written when sqlglot does not know the
    function, else every name sqlglot maps to its class."""
    if isinstance(func, _NAMED_CALLS):
        return {func.name.casefold()}
    return {name.casefold() for name in type(func).sql_names()}


def _written_name(func: exp.Func) -> str:
    return func.name if isinstance(func, _NAMED_CALLS) else func.sql_name().lower()


def _lock_name(lock: exp.Lock) -> str:
    key = lock.args.get("key")
    if lock.args.get("update"):
        return "FOR NO KEY UPDATE" if key else "FOR UPDATE"
    return "FOR KEY SHARE" if key else "FOR SHARE"


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return node.key.upper()


# -- the row cap ----------------------------------------------------------------------------------


def _cap_rows(query: exp.Query, dialect: Dialect, max_rows: int) -> exp.Query:
    """The query returning at most `max_rows` rows: its own LIMIT added or lowered where it
    bounds the whole result, else the query wrapped in `SELECT * FROM (...) LIMIT max_rows`."""
    if not _limit_bounds_result(query, dialect):
        return _wrap(query, max_rows)
    clause = query.args.get("limit")
    if clause is None:
        query.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
        return query
    rows = _stated_rows(clause)
    if rows is None:
        return _wrap(query, max_rows)
    if rows > max_rows:
        count = exp.Literal.number(max_rows)
        clause.set("count" if isinstance(clause, exp.Fetch) else "expression", count)
    return query


def _limit_bounds_result(query: exp.Query, dialect: Dialect) -> bool:
    # ClickHouse binds a LIMIT after a UNION to its last SELECT, not to the union.
    return isinstance(query, exp.Select) or dialect is Dialect.POSTGRES


def _stated_rows(clause: exp.Expr) -> int | None:
    """The rows a LIMIT or FETCH clause allows when it says so with a plain number; None when
    it does not (ALL, an expression, a parameter, WITH TIES, PERCENT, ClickHouse's LIMIT BY)."""
    options = clause.args.get("limit_options")
    if options is not None and (options.args.get("with_ties") or options.args.get("percent")):
        return None
    if isinstance(clause, exp.Fetch):
        count = clause.args.get("count")
        if count is None:  # FETCH FIRST ROW ONLY
            return 1
    elif isinstance(clause, exp.Limit) and not clause.expressions:
        count = clause.expression
    else:
        return None
    digits = count.name if isinstance(count, exp.Literal) and not count.is_string else ""
    if digits.isascii() and digits.isdigit():
        return int(digits)
    return None


def _wrap(query: exp.Query, max_rows: int) -> exp.Query:
    return (
        exp.select(exp.Star())
        .from_(query.subquery(_WRAPPED, copy=False), copy=False)
        .limit(max_rows, copy=False)
    )


# -- printing and the second look -----------------------------------------------------------------


def _print(tree: exp.Expr, dialect: Dialect) -> str:
    # Comments dropped (nothing the server reads hides in them); function names as written,
    # since PostgreSQL's quoted names are case-sensitive.
    return tree.sql(dialect=dialect.value, copy=False, comments=False, normalize_functions=False)


def _recheck(printed: str, dialect: Dialect, max_rows: int | None) -> None:
    """Refuse unless the printed SQL, parsed afresh, passes every check and keeps its row cap:
    what runs is what was checked, even where sqlglot prints a tree it would read differently."""
    try:
        query = _parse_query(_ENGINES[dialect].tokenize(printed), printed, dialect)
    except SqlglotError as e:
        raise _RefusedError(Category.ROUND_TRIP, _first_line(str(e))) from e
    _inspect(query, _RULES[dialect])
    if max_rows is None:
        return
    clause = query.args.get("limit")
    rows = None if clause is None else _stated_rows(clause)
    if not _limit_bounds_result(query, dialect) or rows is None or rows > max_rows:
        raise _RefusedError(Category.ROUND_TRIP, "the row cap did not survive printing")


def _parse_error(error: ParseError) -> str:
    if not error.errors:
        return _first_line(str(error))
    first = error.errors[0]
    return f"{first['description']} at line {first['line']}, column {first['col']}"


def _first_line(message: str) -> str:
    line = message.strip().partition("\n")[0]
    return line if len(line) <= 200 else f"{line[:197]}..."
