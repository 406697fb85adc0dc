"""Which backups a retention count lets go.

Keep the newest `keep` completed backups. Older completed ones go. A failed run goes once
`keep` completed backups are newer than it (until then it is the best clue to what is wrong);
a run still in progress is never chosen, whatever its age.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class BackupRecord:
    name: str
    started: datetime
    succeeded: bool | None  # None: still running (or not started)


def expired(records: Iterable[BackupRecord], keep: int) -> list[BackupRecord]:
    """The records to delete, oldest first. `keep` must be at least 1: retention never
    deletes the last good backup."""
    if keep < 1:
        raise ValueError("retention must keep at least one backup")
    newest_first = sorted(records, key=lambda r: (r.started, r.name), reverse=True)
    completed_newer = 0
    doomed: list[BackupRecord] = []
    for record in newest_first:
        if record.succeeded is None:
            continue
        if record.succeeded:
            completed_newer += 1
            if completed_newer > keep:
                doomed.append(record)
        elif completed_newer >= keep:
            doomed.append(record)
    return doomed[::-1]
