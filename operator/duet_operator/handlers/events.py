"""Kubernetes Events of the handlers, each also a line of the operator's log."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf

from duet_operator.reconcile import Event


def post_events(body: Any, events: Iterable[Event], log: logging.Logger) -> None:
    """Post `events` about the object `body`; warnings are logged as warnings."""
    meta = body["metadata"]
    ref = f"{meta.get('namespace')}/{meta['name']}"
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        log.log(level, "%s %s: %s", ref, event.reason, event.message)
