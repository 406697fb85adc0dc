"""Every event of a set of pods from now on, handed to a callback from a thread: for tests and
benchmarks that must see each step of a rollout, not only where it ends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import watch
from urllib3.exceptions import ProtocolError


@contextlib.contextmanager
def pod_events(
    core: Any, namespace: str, selector: str, on_event: Callable[[str, Any], None]
) -> Iterator[None]:
    """`on_event(type, pod)` for the pods that match `selector`: those there now first (as
    ADDED), then every change, until the context ends. An error in the thread is raised
    when the context ends, not lost."""
    listed = core.list_namespaced_pod(namespace, label_selector=selector)
    for pod in listed.items:
        on_event("ADDED", pod)
    stop = threading.Event()
    stream = watch.Watch()
    failed: list[BaseException] = []

    def follow() -> None:
        version = listed.metadata.resource_version
        while not stop.is_set():
            try:
                for event in stream.stream(
                    core.list_namespaced_pod, namespace, label_selector=selector,
                    resource_version=version, timeout_seconds=5,
                ):  # fmt: skip
                    version = event["object"].metadata.resource_version
                    on_event(event["type"], event["object"])
            except ProtocolError:
                continue  # the connection was cut: on again from the last version seen
            except BaseException as e:
                if not stop.is_set():
                    failed.append(e)
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        stream.stop()
        thread.join(timeout=10)
    if failed:
        raise failed[0]
