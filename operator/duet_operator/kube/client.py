"""The operator's one door to the API server: server-side apply under the field manager `duet`,
reads, deletes, and status patches, through kubernetes_asyncio's dynamic client.

Responses are read as plain JSON (`serialize=False`): the dynamic client's own wrapping
(ResourceInstance, turned back into a dict by `to_dict`) was a quarter of the operator's CPU
time with 100 platforms. A failed request's Status object is handed back rather than raised,
so every call here goes through `_checked`: a refusal is an exception, and a missing object
is None or False, never a dict that looks like an answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable
from typing import Any

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.exceptions import NotFoundError

FIELD_MANAGER = "duet"
CONNECTIONS = 32
Manifest = dict[str, Any]


class KubeError(Exception):
    """The API server refused a request."""

    def __init__(self, code: int, reason: str, message: str, target: str = "") -> None:
        self.code = code
        self.reason = reason
        self.target = target
        super().__init__(f"{target + ': ' if target else ''}{code} {reason}: {message}")

    @property
    def not_found(self) -> bool:
        return self.code == 404


async def _checked(response: Any, target: str) -> Manifest:
    """The JSON body of the dynamic client's unparsed response; a Status of failure raised."""
    try:
        obj: Manifest = await response.json(content_type=None)
    finally:
        response.release()
    if obj.get("kind") == "Status" and obj.get("status") == "Failure":
        raise KubeError(
            int(obj.get("code", 0)), str(obj.get("reason", "")), str(obj.get("message", "")), target
        )
    return obj


def _status_message(body: bytes) -> str:
    """The message of a Status object the API server answered with, or the start of the body."""
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])[:500]
    return body.decode(errors="replace")[:500]


def decoded(secret: Manifest) -> dict[str, str]:
    """A Secret's data, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


class Kube:
    def __init__(self, api: ApiClient, dynamic: DynamicClient) -> None:
        self._api = api
        self._dynamic = dynamic

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        """In a pod, its service account; elsewhere `kubeconfig` or $KUBECONFIG."""
        configuration = Configuration()
        # Each TLS connection holds a 256 KiB read buffer: the client's default pool of 100
        # was 26 MB of the operator's peak. Past a few dozen requests in flight the API server
        # is the bottleneck anyway, and further requests wait for a connection here.
        configuration.connection_pool_maxsize = CONNECTIONS
        try:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except ConfigException:
            await kube_config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        api = ApiClient(configuration)
        return cls(api, await DynamicClient(api))

    async def close(self) -> None:
        await self._api.close()

    async def _resource(self, api_version: str, kind: str) -> Any:
        return await self._dynamic.resources.get(api_version=api_version, kind=kind)

    async def apply(self, manifest: Manifest, *, dry_run: bool = False) -> Manifest:
        """Server-side apply: we own the fields we set, and only those. Forced, because the
        operator is the authority on its children (a hand edit of a field we manage is drift)."""
        resource = await self._resource(manifest["apiVersion"], manifest["kind"])
        result = await self._dynamic.server_side_apply(
            resource,
            body=manifest,
            namespace=manifest["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            dry_run="All" if dry_run else None,
            serialize=False,
        )
        return await _checked(result, f"{manifest['kind']}/{manifest['metadata']['name']}")

    async def apply_all(self, manifests: Iterable[Manifest]) -> list[Manifest]:
        return list(await asyncio.gather(*(self.apply(m) for m in manifests)))

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        resource = await self._resource(api_version, kind)
        try:
            found = await self._dynamic.get(
                resource, name=name, namespace=namespace, serialize=False
            )
            return await _checked(found, f"{kind}/{name}")
        except (KubeError, NotFoundError) as e:
            if isinstance(e, NotFoundError) or e.not_found:
                return None
            raise

    async def list_objects(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str
    ) -> list[Manifest]:
        resource = await self._resource(api_version, kind)
        found = await self._dynamic.get(
            resource, namespace=namespace, label_selector=label_selector, serialize=False
        )
        items: list[Manifest] = (await _checked(found, f"{kind} list")).get("items") or []
        # A list's items come without their type; stored and desired objects are compared
        # whole (drift.unchanged), so they carry it as a GET's answer does.
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        """Delete one object; False when it was already gone."""
        resource = await self._resource(api_version, kind)
        try:
            gone = await self._dynamic.delete(
                resource, name=name, namespace=namespace, serialize=False
            )
            await _checked(gone, f"{kind}/{name}")
        except (KubeError, NotFoundError) as e:
            if isinstance(e, NotFoundError) or e.not_found:
                return False
            raise
        return True

    async def delete_all(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[str]:
        """Delete every object matching the selector; the names deleted."""
        items = await self.list_objects(api_version, kind, namespace, label_selector)
        names = [item["metadata"]["name"] for item in items]
        await asyncio.gather(*(self.delete(api_version, kind, n, namespace) for n in names))
        return names

    async def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> None:
        """Replace the fields of status we write (a merge patch of the status subresource)."""
        resource = await self._resource(api_version, kind)
        result = await self._dynamic.patch(
            resource.subresources["status"],
            body={"status": status},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            serialize=False,
        )
        await _checked(result, f"{kind}/{name} status")

    async def secret_data(self, name: str, namespace: str) -> dict[str, str] | None:
        secret = await self.get("v1", "Secret", name, namespace)
        return None if secret is None else decoded(secret)

    async def pod_log(
        self,
        name: str,
        namespace: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int = 50,
        limit_bytes: int = 256 * 1024,
        timeout: float = 10,
    ) -> str:
        """The last `tail_lines` lines of a container's log (`previous`: of its last run, as
        `kubectl logs --previous`), at most `limit_bytes` of them.

        Read raw: the generated client runs a body that parses as JSON (a one-line JSON log)
        through json.loads and hands back its Python repr. Raw responses skip the client's
        status check, so it is made here."""
        target = f"Pod/{name} log"
        # With _preload_content=False the answer is aiohttp's response, not the str typed.
        response: Any = await CoreV1Api(self._api).read_namespaced_pod_log(
            name,
            namespace,
            container=container,
            previous=previous,
            tail_lines=tail_lines,
            limit_bytes=limit_bytes,
            _preload_content=False,
            _request_timeout=timeout,
        )
        try:
            body: bytes = await response.read()
            status, reason = int(response.status), str(response.reason or "")
        finally:
            response.release()
        if not 200 <= status <= 299:
            raise KubeError(status, reason, _status_message(body), target)
        return body.decode(errors="replace")


__all__ = ["FIELD_MANAGER", "ApiException", "Kube", "KubeError", "Manifest", "decoded"]
