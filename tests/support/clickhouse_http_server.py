"""ClickHouse's HTTP interface over chDB, one data directory per process, for tests.

    python -m tests.support.clickhouse_http_server --data DIR --config FILE --user NAME

reads the user's password as the first line of stdin, listens on a free loopback port, prints
`{"port": N}` once it answers, and exits when stdin closes (its parent is gone or done with
it). tests/support/clickhouse_http.py starts and stops these; see it for why they exist.

What a real server does and this one does too, as clickhouse-connect's HTTP client sees it:
- The statement is the `query` URL parameter, a newline, then the request body (the body alone
  when there is no parameter); `INSERT ... FORMAT F` followed by data reads that data (through
  a temp file and `FROM INFILE`, chDB's way in for binary input). The body may be compressed
  (`Content-Encoding`: lz4, zstd, gzip, deflate) or a multipart form of `query` and `param_*`.
- `param_<name>` parameters bind `{name:Type}`; `database` picks the current database;
  `default_format` the output of a statement without FORMAT (TabSeparated otherwise).
- Every other parameter is a setting, applied to that request only: each distinct set of
  settings gets a chDB connection of its own, opened with them in its connection string,
  where chDB makes them the connection's own (a profile, in effect: under `readonly=1` even
  a `SET` statement is refused, which it is not when `readonly` is itself `SET`). A name
  chDB does not know fails as on a server (115 UNKNOWN_SETTING); a value that a connection
  string cannot carry (`&`, `%`, `#`, `?`, `=`, control characters) is refused (36).
  HTTP_PARAMETERS and HTTP_SETTINGS are consumed here and never reach chDB.
- Answers carry X-ClickHouse-Format (for statements with a result), -Query-Id, -Timezone,
  -Summary and -Server-Display-Name; with `enable_http_compression=1` and an Accept-Encoding
  this server can produce, the body is compressed (zstd, lz4, gzip, deflate, in that order).
- Failures answer with ClickHouse's `Code: N. DB::Exception: ...` body, the
  X-ClickHouse-Exception-Code header and the status the server maps the code to
  (exceptionCodeToHTTPStatus.cpp: 403 for authentication, 400 for syntax, 404 for unknown
  tables, 500 otherwise...).
- One user, checked as the server does: X-ClickHouse-User/-Key, Basic auth, or the
  `user`/`password` parameters, else `default` with no password; anything else is 516.

Not served: sessions (`session_id` is accepted and ignored: `USE` is undone by the next
request, but a `SET` statement stays on the connection of that set of settings, where a
server without a session would forget it), external data (multipart files), ClickHouse's
own `compress`/`decompress` block format, progress headers, streaming (an answer is built
whole), `client_protocol_version` (Native output stays at revision 0, which
clickhouse-connect detects and reads).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hmac
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame  # type: ignore[import-untyped]
from backports import zstd

# Request parameters of ClickHouse's HTTP handler that are not settings.
HTTP_PARAMETERS = frozenset(
    {
        "buffer_size",
        "client_protocol_version",
        "close_session",
        "compress",
        "database",
        "decompress",
        "default_format",
        "password",
        "query",
        "query_id",
        "quota_key",
        "role",
        "session_check",
        "session_id",
        "session_timeout",
        "stacktrace",
        "user",
        "wait_end_of_query",
    }
)
# Settings that only shape the HTTP exchange, which this server does itself or not at all.
HTTP_SETTINGS = frozenset(
    {
        "cancel_http_readonly_queries_on_client_close",
        "enable_http_compression",
        "http_headers_progress_interval_ms",
        "http_response_buffer_size",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
    }
)
PARAMETER_PREFIX = "param_"
TAB_SEPARATED = frozenset({"TabSeparated", "TSV"})
# Compression this server can produce, in the server's order of preference.
_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": zstd.compress,
    "lz4": lz4.frame.compress,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}
_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": zstd.decompress,
    "lz4": lz4.frame.decompress,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}
# src/Server/HTTP/exceptionCodeToHTTPStatus.cpp, by the error's name (chDB's messages end
# with it, so no table of numbers is needed).
_STATUS_BY_ERROR = {
    401: {"REQUIRED_PASSWORD"},
    403: {"UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE",
          "ACCESS_DENIED"},
    400: {"BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
          "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE",
          "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
          "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
          "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST",
          "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
          "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
          "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"},
    404: {"UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE",
          "UNKNOWN_STORAGE", "UNKNOWN_DATABASE", "UNKNOWN_SETTING",
          "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
          "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"},
    413: {"QUERY_IS_TOO_LARGE"},
    501: {"NOT_IMPLEMENTED"},
    503: {"SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"},
    411: {"HTTP_LENGTH_REQUIRED"},
    408: {"TIMEOUT_EXCEEDED"},
    415: {"UNSUPPORTED_MEDIA_TYPE"},
}  # fmt: skip
_STATUS = {name: status for status, names in _STATUS_BY_ERROR.items() for name in names}
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
# `INSERT INTO <target> [SETTINGS ...] FORMAT F`, then the data from the next line on.
_INSERT_WITH_DATA = re.compile(
    rb"^\s*INSERT\s+INTO\s+(?P<target>.*?)(?P<settings>\bSETTINGS\b.*?)?"
    rb"\bFORMAT\s+(?P<format>\w+)[ \t]*(?:\r?\n|$)",
    re.IGNORECASE | re.DOTALL,
)
# A target that says this is SQL, not data: FORMAT was inside a value or a SELECT.
_NOT_A_TARGET = re.compile(rb"\b(VALUES|SELECT|WITH)\b|'", re.IGNORECASE)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNSAFE_VALUE = re.compile(r"[&%#?=\x00-\x1f]")
_CONNECTIONS = 32  # distinct setting sets kept open; clients send few


class ServerError(Exception):
    """A failure answered the way ClickHouse answers it."""

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        found = _CODE.search(message)
        self.code = code if code is not None else int(found.group(1)) if found else 1001
        named = _NAME.search(message)
        self.name = name or (named.group(1) if named else "STD_EXCEPTION")
        text = message.strip()
        # chDB may put words of its own before ClickHouse's message.
        text = text[text.find("Code: ") :] if "Code: " in text else text
        if not text.startswith("Code:"):
            text = f"Code: {self.code}. DB::Exception: {text}. ({self.name})"
        self.message = text

    @property
    def status(self) -> int:
        return _STATUS.get(self.name, 500)


@dataclass(frozen=True)
class Statement:
    """One request, as the engine runs it."""

    text: bytes
    database: str
    settings: tuple[tuple[str, str], ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    default_format: str = "TabSeparated"


@dataclass(frozen=True)
class Outcome:
    body: bytes
    result_format: str | None
    summary: Mapping[str, str]


def split_parameters(
    pairs: list[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """URL parameters as (HTTP parameters and HTTP settings, bound `param_*` values without
    the prefix, settings for the engine); a later duplicate wins, as on a server."""
    http: dict[str, str] = {}
    params: dict[str, str] = {}
    settings: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith(PARAMETER_PREFIX):
            params[name[len(PARAMETER_PREFIX) :]] = value
        elif name in HTTP_PARAMETERS or name in HTTP_SETTINGS:
            http[name] = value
        else:
            settings[name] = value
    return http, params, settings


def settings_key(settings: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The settings in a stable order, each checked to fit in a chDB connection string."""
    for name, value in settings.items():
        if not _SETTING_NAME.match(name):
            raise ServerError(f"Unknown setting '{name[:100]}'", code=115, name="UNKNOWN_SETTING")
        if _UNSAFE_VALUE.search(value):
            raise ServerError(
                f"The value of setting '{name}' holds a character this test server cannot pass"
                " to chDB in a connection string",
                code=36,
                name="BAD_ARGUMENTS",
            )
    return tuple(sorted(settings.items()))


def choose_encoding(accept_encoding: str) -> str | None:
    """The response encoding for an Accept-Encoding header: the first this server prefers
    that the client accepts (q=0 refuses one)."""
    accepted = set()
    for item in accept_encoding.split(","):
        token, _, parameters = item.partition(";")
        quality = parameters.strip()
        if quality.startswith("q="):
            try:
                refused = float(quality[2:]) == 0
            except ValueError:
                refused = True
            if refused:
                continue
        accepted.add(token.strip().lower())
    return next((name for name in _COMPRESSORS if name in accepted or "*" in accepted), None)


def decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding.lower() == "identity":
        return body
    try:
        return _DECOMPRESSORS[encoding.lower()](body)
    except KeyError:
        raise ServerError(
            f"Unknown compression method '{encoding[:40]}'",
            code=89,
            name="UNKNOWN_COMPRESSION_METHOD",
        ) from None
    except Exception as e:  # each library has its own error type
        message = f"Cannot decompress the request body: {e}"
        raise ServerError(message, code=271, name="CANNOT_DECOMPRESS") from None


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body (the query and bound parameters); a file part
    (external data) is not supported."""
    form = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in form.iter_parts():
        if part.get_filename() is not None:
            message = "External data is not supported by this test server"
            raise ServerError(message, code=48, name="NOT_IMPLEMENTED")
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


def statement_text(url_query: str, body: bytes) -> bytes:
    """What ClickHouse executes: the `query` parameter, a newline, then the body."""
    if url_query and body:
        return url_query.encode() + b"\n" + body
    text = url_query.encode() if url_query else body
    if not text.strip():
        raise ServerError("Empty query", code=62, name="SYNTAX_ERROR")
    return text


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Engine:
    """chDB on one data directory, one statement at a time."""

    def __init__(self, data: str, config: str) -> None:
        self._path = data
        self._lock = threading.Lock()
        self._root = _open(f"{data}?config-file={config}")
        self._connections: OrderedDict[tuple[tuple[str, str], ...], Any] = OrderedDict()
        version, timezone = self._text(self._root, "SELECT version(), timezone()").split("\t")
        self.version, self.timezone = version, timezone.strip()
        names = self._text(self._root, "SELECT name FROM system.settings")
        self._known_settings = frozenset(names.split())

    def close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()
            self._root.close()

    def run(self, statement: Statement) -> Outcome:
        with self._lock:
            connection = self._connection(statement.settings)
            self._query(connection, f"USE {_identifier(statement.database)}", "TabSeparated")
            insert = _INSERT_WITH_DATA.match(statement.text)
            if insert is not None and not _NOT_A_TARGET.search(insert.group("target")):
                return self._insert(connection, insert, statement.text[insert.end() :])
            return self._select(connection, statement)

    def _connection(self, settings: tuple[tuple[str, str], ...]) -> Any:
        if not settings:
            return self._root
        if settings in self._connections:
            self._connections.move_to_end(settings)
            return self._connections[settings]
        # chDB drops names it does not know from a connection string; a server refuses them.
        for name, _ in settings:
            if name not in self._known_settings:
                raise ServerError(
                    f"Setting {name} is neither a builtin setting nor started with the prefix"
                    " 'custom_' registered for user-defined settings",
                    code=115,
                    name="UNKNOWN_SETTING",
                )
        # The engine runs already: a connection string without the config joins it.
        options = "&".join(f"{name}={value}" for name, value in settings)
        connection = _open(f"{self._path}?{options}")
        self._connections[settings] = connection
        if len(self._connections) > _CONNECTIONS:
            _, oldest = self._connections.popitem(last=False)
            oldest.close()
        return connection

    def _select(self, connection: Any, statement: Statement) -> Outcome:
        try:
            sql = statement.text.decode()
        except UnicodeDecodeError:
            raise ServerError(
                "The query is not valid UTF-8", code=62, name="SYNTAX_ERROR"
            ) from None
        named = _TRAILING_FORMAT.search(sql)
        if named is not None:
            result = self._query(connection, sql, named.group(1), statement.params)
            return Outcome(bytes(result.bytes()), named.group(1), _summary(result))
        fmt = statement.default_format
        if fmt not in TAB_SEPARATED:
            result = self._query(connection, sql, fmt, statement.params)
            body = bytes(result.bytes())
            return Outcome(body, fmt if body else None, _summary(result))
        # A statement with a result prints at least the names line, one without prints
        # nothing: that tells which answers carry X-ClickHouse-Format, as a server's do.
        result = self._query(connection, sql, "TabSeparatedWithNames", statement.params)
        body = bytes(result.bytes())
        if not body:
            return Outcome(b"", None, _summary(result))
        return Outcome(body[body.find(b"\n") + 1 :], fmt, _summary(result))

    def _insert(self, connection: Any, insert: re.Match[bytes], data: bytes) -> Outcome:
        target = insert.group("target").decode().strip()
        settings = (insert.group("settings") or b"").decode().strip()
        fmt = insert.group("format").decode()
        with tempfile.NamedTemporaryFile(prefix="insert-", suffix=".data") as file:
            file.write(data)
            file.flush()
            # FROM INFILE comes before SETTINGS in the grammar.
            sql = f"INSERT INTO {target} FROM INFILE {_quote(file.name)} {settings} FORMAT {fmt}"
            result = self._query(connection, sql, "TabSeparated")
        summary = _summary(result)
        written = {"written_rows": summary["read_rows"], "written_bytes": summary["read_bytes"]}
        return Outcome(b"", None, summary | written)

    def _text(self, connection: Any, sql: str) -> str:
        return str(bytes(self._query(connection, sql, "TabSeparated").bytes()).decode())

    @staticmethod
    def _query(connection: Any, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> Any:
        try:
            return connection.query(sql, fmt, params=dict(params or {}))
        except RuntimeError as e:  # chDB's ChdbError
            raise ServerError(str(e)) from None


def _open(connection_string: str) -> Any:
    return chdb.connect(connection_string)  # type: ignore[no-untyped-call]


def _summary(result: Any) -> dict[str, str]:
    return {
        "read_rows": str(result.rows_read()),
        "read_bytes": str(result.bytes_read()),
        "written_rows": "0",
        "written_bytes": "0",
        "elapsed_ns": str(int(result.elapsed() * 1e9)),
    }


class ClickHouseHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, engine: Engine, user: str, password: str, display_name: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.engine = engine
        self.user = user
        self.password = password
        self.display_name = display_name

    def authenticate(self, user: str, password: str) -> None:
        same_user = hmac.compare_digest(user.encode(), self.user.encode())
        if not (hmac.compare_digest(password.encode(), self.password.encode()) and same_user):
            raise ServerError(
                f"{user}: Authentication failed: password is incorrect, or there is no user"
                " with such name",
                code=516,
                name="AUTHENTICATION_FAILED",
            )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's pool expects
    server: ClickHouseHTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: query strings may carry bound values or a password parameter.
        sys.stderr.write(f"{self.command} {urlsplit(self.path).path} {code}\n")

    def _handle(self) -> None:
        query_id = str(uuid.uuid4())
        try:
            body = self._body()  # read whatever happens, or the next request starts mid-body
            url = urlsplit(self.path)
            pairs = parse_qsl(url.query, keep_blank_values=True)
            if url.path.rstrip("/") == "/ping" or (
                self.command == "GET" and url.path == "/" and not pairs
            ):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if url.path != "/":
                raise ServerError(
                    f"There is no handle {url.path[:100]}", code=48, name="NOT_IMPLEMENTED"
                )
            http, params, settings = split_parameters(pairs)
            self.server.authenticate(*self._credentials(http))
            query_id = http.get("query_id") or query_id
            statement = self._statement(http, params, settings, body)
            outcome = self.server.engine.run(statement)
        except ServerError as e:
            self._fail(e, query_id)
            return
        except Exception as e:  # a gap in this server: answered, so the client says what
            self._fail(ServerError(f"{type(e).__name__}: {e}"), query_id)
            return
        self._answer(outcome, http, query_id)

    def _statement(
        self, http: dict[str, str], params: dict[str, str], settings: dict[str, str], body: bytes
    ) -> Statement:
        content_type = self.headers.get("Content-Type", "")
        body = decompress(body, self.headers.get("Content-Encoding"))
        if content_type.lower().startswith("multipart/form-data"):
            form_http, form_params, _ = split_parameters(
                list(form_fields(content_type, body).items())
            )
            if "query" in form_http:
                http = http | {"query": form_http["query"]}
            params = params | form_params
            body = b""
        if self.command == "GET" and "readonly" not in settings:
            settings = settings | {"readonly": "2"}  # as a server runs GET requests
        return Statement(
            text=statement_text(http.get("query", ""), body),
            database=http.get("database") or "default",
            settings=settings_key(settings),
            params=params,
            default_format=http.get("default_format") or "TabSeparated",
        )

    def _answer(self, outcome: Outcome, http: Mapping[str, str], query_id: str) -> None:
        native = outcome.result_format == "Native"
        headers = self._common_headers(query_id) | {
            "X-ClickHouse-Summary": json.dumps(dict(outcome.summary)),
            "Content-Type": "application/octet-stream" if native else "text/plain; charset=UTF-8",
        }
        if outcome.result_format is not None:
            headers["X-ClickHouse-Format"] = outcome.result_format
        body = outcome.body
        if http.get("enable_http_compression") == "1":
            encoding = choose_encoding(self.headers.get("Accept-Encoding", ""))
            if encoding is not None:
                body = _COMPRESSORS[encoding](body)
                headers["Content-Encoding"] = encoding
        self._send(200, body, headers)

    def _credentials(self, http: Mapping[str, str]) -> tuple[str, str]:
        if "X-ClickHouse-User" in self.headers:
            return self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                raise ServerError(
                    "Malformed Basic authorization", code=36, name="BAD_ARGUMENTS"
                ) from None
            user, _, password = decoded.partition(":")
            return user, password
        return http.get("user", "default"), http.get("password", "")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _common_headers(self, query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
        }

    def _fail(self, error: ServerError, query_id: str) -> None:
        message = error.message
        if "(version " not in message:
            message = f"{message} (version {self.server.engine.version})"
        headers = self._common_headers(query_id) | {
            "X-ClickHouse-Exception-Code": str(error.code),
            "Content-Type": "text/plain; charset=UTF-8",
        }
        self._send(error.status, (message + "\n").encode(), headers)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _stop_when_stdin_closes(server: ClickHouseHTTPServer) -> None:
    # The parent holds the other end: EOF means it is done with us or gone.
    sys.stdin.buffer.read()
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", required=True, help="chDB's data directory")
    parser.add_argument("--config", required=True, help="ClickHouse config file (macros...)")
    parser.add_argument("--user", required=True)
    parser.add_argument("--display-name", default="chdb")
    args = parser.parse_args(argv)
    password = sys.stdin.buffer.readline().decode().rstrip("\n")
    started = time.perf_counter()
    engine = Engine(args.data, args.config)
    server = ClickHouseHTTPServer(engine, args.user, password, args.display_name)
    port = cast(tuple[str, int], server.server_address)[1]
    ready = {"port": port, "version": engine.version, "seconds": time.perf_counter() - started}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    # Nothing reads stdout any more; writes there must not block on a full pipe.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    threading.Thread(target=_stop_when_stdin_closes, args=(server,), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
