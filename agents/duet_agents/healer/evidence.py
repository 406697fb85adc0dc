"""Evidence lines: short, bounded, one fact each.

Evidence ends up in a `Remediation` object (and in a model's prompt), so every list and every
line is bounded here, whatever the cluster says: an Event message or a scheduler explanation
can be kilobytes, and a storm can produce hundreds of matching events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from duet_agents.healer.observations import EventObservation, LogExcerpt

# The Remediation CRD allows 32 lines; leave room for the operator's own notes.
MAX_EVIDENCE_LINES = 16
MAX_LINE_CHARS = 240
MAX_REASON_CHARS = 300

_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# `password=hunter2`, `"token": "abc"`, `Authorization: Bearer abc`: the value goes, the name stays.
_SECRET = re.compile(
    r"(?i)((?:password|passwd|secret|token|api[_-]?key|authorization)[\"']?\s*[=:]\s*)"
    r"(?:bearer\s+|basic\s+)?[\"']?[^\s\"',;&]+[\"']?"
)


def redact(text: str) -> str:
    """`text` without the values of anything that looks like a credential."""
    return _SECRET.sub(r"\1***", text)


def clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """One line of at most `limit` characters, without control characters or credentials."""
    flat = redact(_SPACE.sub(" ", _CONTROL.sub(" ", text)).strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def bounded(lines: Iterable[str], limit: int = MAX_EVIDENCE_LINES) -> list[str]:
    """At most `limit` clipped, non-empty, distinct lines; the last says how many were left out."""
    unique = list(dict.fromkeys(clip(line) for line in lines if line.strip()))
    if len(unique) <= limit:
        return unique
    kept = unique[: limit - 1]
    return [*kept, f"... and {len(unique) - len(kept)} more"]


def log_lines(
    excerpts: Iterable[LogExcerpt], pod: str | None, container: str | None, limit: int
) -> list[str]:
    """The last `limit` lines the symptom's container (or any container of its pod) wrote."""
    lines: list[str] = []
    for excerpt in excerpts:
        if excerpt.pod != pod or (container is not None and excerpt.container != container):
            continue
        lines.extend(f"log {excerpt.container}: {line}" for line in excerpt.lines)
    return lines[-limit:] if limit else []


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "unknown"


def age(since: datetime | None, now: datetime) -> str:
    """`2m10s` style, as kubectl prints ages."""
    return "unknown" if since is None else duration(now - since)


def duration(span: timedelta) -> str:
    """`2m10s`, `1h5m`, `30s`, `6h`."""
    seconds = max(0, int(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def event_lines(
    events: Iterable[EventObservation],
    objects: set[str],
    now: datetime,
    window: timedelta,
    limit: int,
) -> list[str]:
    """The most recent events about `objects` (`pod/name` form) within `window`, newest first."""
    recent = [
        e
        for e in events
        if e.object in objects and (e.last_seen is None or now - e.last_seen <= window)
    ]
    recent.sort(key=lambda e: (e.last_seen is not None, e.last_seen, e.count), reverse=True)
    return [
        f"event {e.type} {e.reason} x{e.count} on {e.object}, last {when(e.last_seen)}: {e.message}"
        for e in recent[:limit]
    ]
