"""Database URLs: `chdb:///path`, `clickhouse[s]://user:pass@host:port/db`,
`postgres[ql]://user:pass@host:port/db`, parsed once into a model whose password is a
`SecretStr`, so neither its repr nor any message built from it shows the password.
"""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from duet_agents.query.engines.errors import InvalidURLError


class Scheme(StrEnum):
    CHDB = "chdb"
    CLICKHOUSE = "clickhouse"
    CLICKHOUSES = "clickhouses"
    POSTGRESQL = "postgresql"


_ALIASES = {"postgres": Scheme.POSTGRESQL}
_DEFAULT_PORTS = {Scheme.CLICKHOUSE: 8123, Scheme.CLICKHOUSES: 8443, Scheme.POSTGRESQL: 5432}
# Query options passed through to the driver. Anything else is refused rather than ignored: a
# typo should not silently weaken TLS, and libpq's `options` could switch read-only off.
_OPTIONS = {
    Scheme.CHDB: frozenset({"database"}),
    Scheme.CLICKHOUSE: frozenset(),
    Scheme.CLICKHOUSES: frozenset({"verify", "ca_cert"}),
    Scheme.POSTGRESQL: frozenset(
        {"sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "connect_timeout"}
    ),
}
# From the user's colon to the last @ anywhere: a password with an unencoded @ or / breaks the
# URL's structure, and hiding too much beats showing part of it.
_CREDENTIALS = re.compile(r"(//[^/@:]*:).*@")


class DatabaseURL(BaseModel):
    """A parsed database URL. `str()` gives it back with the password replaced."""

    model_config = ConfigDict(frozen=True)

    scheme: Scheme
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    # chDB's data directory; None for an in-memory engine.
    path: str | None = None
    options: dict[str, str] = {}

    def secret(self) -> str | None:
        return None if self.password is None else self.password.get_secret_value()

    def redacted(self) -> str:
        if self.scheme is Scheme.CHDB:
            text = f"chdb://{self.path or ''}"
        else:
            login = quote(self.user or "", safe="")
            if self.password is not None:
                login += ":***"
            at = f"{login}@" if login else ""
            text = f"{self.scheme}://{at}{self.host}:{self.port}/{self.database or ''}"
        if self.options:
            text += "?" + "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return text

    def __str__(self) -> str:
        return self.redacted()


def redact(url: str) -> str:
    """`url` with any password replaced, for messages about a URL that did not parse."""
    return _CREDENTIALS.sub(r"\1***@", url)


def parse_url(url: str) -> DatabaseURL:
    """The URL's parts, or InvalidURLError naming what is wrong. Messages quote the URL only
    through `redact`, so they never carry the password."""
    try:
        return _parse(url)
    except ValueError as e:  # urlsplit's own complaints: a port that is not a number, ...
        raise InvalidURLError(f"{e} in {redact(url)!r}") from None


def _parse(url: str) -> DatabaseURL:
    parts = urlsplit(url.strip())
    raw_scheme = parts.scheme.lower()
    try:
        scheme = _ALIASES.get(raw_scheme) or Scheme(raw_scheme)
    except ValueError:
        known = "chdb://, clickhouse://, clickhouses://, postgresql://, postgres://"
        raise InvalidURLError(
            f"unsupported database URL {redact(url)!r}: use one of {known}"
        ) from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - _OPTIONS[scheme])
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[scheme])) or "none"
        raise InvalidURLError(
            f"unsupported option(s) {', '.join(unknown)} in {redact(url)!r} "
            f"(supported for {scheme}://: {allowed})"
        )
    if scheme is Scheme.CHDB:
        return _parse_chdb(url, parts.netloc, parts.path, options)
    if not parts.hostname:
        raise InvalidURLError(f"{redact(url)!r} names no host")
    database = unquote(parts.path.lstrip("/")) or None
    if database is not None and "/" in database:
        raise InvalidURLError(f"{redact(url)!r}: the path must be a single database name")
    password = unquote(parts.password) if parts.password is not None else None
    return DatabaseURL(
        scheme=scheme,
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[scheme],
        user=unquote(parts.username) if parts.username else None,
        password=SecretStr(password) if password is not None else None,
        database=database,
        options=options,
    )


def _parse_chdb(url: str, netloc: str, path: str, options: dict[str, str]) -> DatabaseURL:
    if netloc:
        raise InvalidURLError(
            f"{redact(url)!r}: a chDB URL is chdb:///absolute/path (three slashes) or chdb:// "
            "for an in-memory engine"
        )
    if path in ("", "/"):
        if path == "/":
            raise InvalidURLError("chdb:/// needs a data directory after the slashes")
        return DatabaseURL(scheme=Scheme.CHDB, database=options.pop("database", None))
    database = options.pop("database", None)
    return DatabaseURL(scheme=Scheme.CHDB, path=unquote(path), database=database)
