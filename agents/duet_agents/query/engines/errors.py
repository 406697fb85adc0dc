"""One family of errors for every engine, with messages that never carry credentials.

Callers catch `QueryError`; the subclasses say what happened in terms the query server maps to
an answer (a timeout, a refusal, a broken connection, a bad URL). Drivers' exceptions are
translated at the engine's edge, and every message passes through `scrub` with the URL's
password, since a driver may echo its connection string.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "***"


class QueryError(Exception):
    """A query, or the connection it needed, failed. `code` is the database's own error code
    when there is one (a PostgreSQL SQLSTATE, a ClickHouse error name), for logs and metrics."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class InvalidURLError(QueryError):
    """The database URL cannot be used: unknown scheme, missing part, unsupported option."""


class ConnectionFailedError(QueryError):
    """The database could not be reached, refused the login, or the connection broke."""


class QueryTimeoutError(QueryError):
    """The statement ran past the engine's time limit and was stopped."""


class QueryDeniedError(QueryError):
    """The database refused the statement as not permitted: a write in a read-only session, a
    setting change under readonly, or a relation the user has no privilege on."""


class QueryFailedError(QueryError):
    """The database could not run the statement: a syntax error, an unknown table, ..."""


def scrub(message: str, secrets: Iterable[str | None]) -> str:
    """`message` with every secret replaced by a placeholder."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, REDACTED)
    return message
