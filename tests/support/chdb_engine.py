"""A chDB engine opened with a server configuration, as the backup tests need it: the
configuration's `backups.allowed_path` is what lets `BACKUP ... TO File(...)` run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def chdb_server(data: Path, config: Path) -> Iterator[Any]:
    from chdb import session as chdb_session  # noqa: PLC0415 - an optional extra (`.[chdb]`)

    # chDB ships no type hints.
    session = chdb_session.Session(f"{data}?config-file={config}")  # type: ignore[no-untyped-call]
    try:
        yield session
    finally:
        session.close()  # type: ignore[no-untyped-call]
