"""The operator's one door to the API server: server-side apply under the field manager `duet`,
reads, deletes, status patches and pod logs, as plain JSON over HTTP.

lightkube reads the configuration and authenticates (kubeconfig with client certificates,
tokens or exec plugins; in a pod, the service account's token, re-read as it rotates) and
hands over an httpx2 client for the API server. The requests themselves are the few REST
calls below, made on that client and answered as dicts, because every caller works with
whole manifests: a typed client drops the fields its models do not know, and stored and
desired objects are compared whole (drift.unchanged). Paths come from the API server's own
discovery (kind -> resource name, namespaced or not), read once per group version.

Why not kubernetes_asyncio, used before: kopf imports it whenever it is installed, and its
`client` package imports every generated model, 37 MB of the operator's resident memory
spent on classes no line of Duet used (docs/operator.md, "Memory").
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import (
    DEFAULT_KUBECONFIG,
    SERVICE_ACCOUNT,
    KubeConfig,
    SingleConfig,
)
from lightkube.core.exceptions import ConfigError

FIELD_MANAGER = "duet"
TIMEOUT_SECONDS = 30
CONNECTIONS = 32
Manifest = dict[str, Any]
APPLY = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


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


class KindMissingError(KubeError):
    """The API server does not serve the kind (a CRD not installed, or not yet)."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(404, "NotFound", f"the server has no kind {kind} in {api_version}")


class KubeUnreachableError(Exception):
    """No answer from the API server (connection refused or reset, timed out). Not a
    KubeError: nothing was refused, and the caller's retry is the right answer."""


def _status_message(body: bytes) -> str:
    """The message of a Status object the API server answered with, or the start of the body."""
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])[:500]
    return body.decode(errors="replace")[:500]


def _refusal(response: httpx2.Response, target: str) -> KubeError:
    try:
        status = response.json()
    except ValueError:
        status = None
    reason = response.reason_phrase
    if isinstance(status, dict) and status.get("reason"):
        reason = str(status["reason"])
    return KubeError(response.status_code, reason, _status_message(response.content), target)


def decoded(secret: Manifest) -> dict[str, str]:
    """A Secret's data, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def load_config(
    kubeconfig: str | None = None,
    *,
    prefer_in_cluster: bool = True,
    service_account: str = SERVICE_ACCOUNT,
) -> SingleConfig:
    """The context to talk to. In a pod, the operator (`prefer_in_cluster`) takes its service
    account, as in-cluster clients do; a command takes the kubeconfig first, as kubectl does.
    Each falls back to the other.

    The kubeconfig is `kubeconfig`, else $KUBECONFIG, else ~/.kube/config. A list of files
    (`a:b`) is read as its first existing file: contexts merged across files are not supported.
    """
    listed = (kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG).split(os.pathsep)
    path = next((f for f in listed if f and Path(f).expanduser().is_file()), None)
    in_pod = Path(service_account, "token").is_file()
    use_account = in_pod and (prefer_in_cluster or path is None)
    source = "the service account" if use_account else path
    try:
        if use_account:
            loaded = KubeConfig.from_service_account(service_account)
        elif path is not None:
            loaded = KubeConfig.from_file(path)
        else:
            raise ConfigError(f"no kubeconfig at {':'.join(listed)}, and not in a pod")
        config = loaded.get()
    except KeyError as e:
        # The kubeconfig lacks a section (or names a cluster it does not define), or the pod
        # lacks KUBERNETES_SERVICE_HOST/PORT.
        raise ConfigError(f"{source}: no {e}") from None
    except (ConfigError, OSError) as e:
        raise ConfigError(f"no usable Kubernetes configuration: {e}") from None
    if config is None:  # only with a default, which is not asked for: said all the same
        raise ConfigError(f"{source} has no current context")
    return config


@dataclass(frozen=True)
class _Resource:
    """Where a kind lives: its resource name in URLs, and whether it is namespaced."""

    plural: str
    namespaced: bool


class Kube:
    def __init__(self, http: httpx2.AsyncClient, namespace: str = "default") -> None:
        self._http = http
        self.namespace = namespace
        self._resources: dict[str, dict[str, _Resource]] = {}
        self._discovering: dict[str, asyncio.Lock] = {}

    @classmethod
    async def connect(
        cls, kubeconfig: str | None = None, *, prefer_in_cluster: bool = True
    ) -> Kube:
        """A client of the context `load_config` picks; `namespace` is that context's (what
        kubectl uses when none is given)."""
        config = await asyncio.to_thread(
            load_config, kubeconfig, prefer_in_cluster=prefer_in_cluster
        )
        # No pool timeout: in a burst, requests wait for a connection rather than fail.
        timeout = httpx2.Timeout(TIMEOUT_SECONDS, pool=None)
        # lightkube's parameters (base URL, TLS context from the kubeconfig's files, the
        # user's auth) with a pool of our size: all connections kept alive, because a TLS
        # handshake per request is what 2 cores cannot afford in a burst.
        params = await asyncio.to_thread(ConnectionParams(timeout=timeout).httpx_params, config)
        limits = httpx2.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        return cls(httpx2.AsyncClient(**params, limits=limits), config.namespace)

    @classmethod
    def for_server(cls, url: str) -> Kube:
        """A client of a server that asks for no credentials (tests, `kubectl proxy`)."""
        return cls(httpx2.AsyncClient(base_url=url, timeout=TIMEOUT_SECONDS))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- requests ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> httpx2.Response:
        """One request, its answer whatever the status (the caller reads it);
        KubeUnreachableError when there was none."""
        query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in (params or {}).items()}
        try:
            return await self._http.request(
                method,
                path,
                params=query,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": content_type} if body is not None else None,
                timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
            )
        except httpx2.TransportError as e:
            raise KubeUnreachableError(f"{method} {path}: {type(e).__name__}: {e}") from e

    async def _call(
        self,
        method: str,
        path: str,
        target: str,
        **request: Any,
    ) -> Manifest:
        """The JSON body of a successful answer; a refusal raised as KubeError."""
        response = await self.request(method, path, **request)
        if not response.is_success:
            raise _refusal(response, target)
        answer: Manifest = response.json()
        return answer

    async def _discover(self, api_version: str) -> dict[str, _Resource]:
        known = self._resources.get(api_version)
        if known is not None:
            return known
        # One discovery request per group version, however many reconciles ask at once.
        async with self._discovering.setdefault(api_version, asyncio.Lock()):
            if (known := self._resources.get(api_version)) is not None:
                return known
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = await self._call("GET", base, f"discovery of {api_version}")
            found = {
                r["kind"]: _Resource(r["name"], bool(r.get("namespaced")))
                for r in listing.get("resources") or []
                if "/" not in r["name"]  # subresources: pods/log, statefulsets/status
            }
            self._resources[api_version] = found
            return found

    async def _path(
        self, api_version: str, kind: str, namespace: str | None, name: str | None = None
    ) -> str:
        resource = (await self._discover(api_version)).get(kind)
        if resource is None:
            # Installed since the last look (a CRD applied after the operator started).
            self._resources.pop(api_version, None)
            resource = (await self._discover(api_version)).get(kind)
        if resource is None:
            raise KindMissingError(api_version, kind)
        parts = ["/api/v1" if api_version == "v1" else f"/apis/{api_version}"]
        if resource.namespaced:
            if not namespace:
                raise ValueError(f"{kind} is namespaced: a namespace is needed")
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(resource.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        return "/".join(parts)

    # -- objects -------------------------------------------------------------------------

    async def apply(self, manifest: Manifest, *, dry_run: bool = False) -> Manifest:
        """Server-side apply: we own the fields we set, and only those. Forced, because the
        operator is the authority on its children (a hand edit of a field we manage is drift)."""
        metadata = manifest["metadata"]
        path = await self._path(
            manifest["apiVersion"], manifest["kind"], metadata.get("namespace"), metadata["name"]
        )
        params: dict[str, str | int | bool] = {"fieldManager": FIELD_MANAGER, "force": True}
        if dry_run:
            params["dryRun"] = "All"
        return await self._call(
            "PATCH",
            path,
            f"{manifest['kind']}/{metadata['name']}",
            params=params,
            body=manifest,
            content_type=APPLY,
        )

    async def apply_all(self, manifests: Iterable[Manifest]) -> list[Manifest]:
        return list(await asyncio.gather(*(self.apply(m) for m in manifests)))

    async def create(self, manifest: Manifest, namespace: str | None = None) -> Manifest:
        """Create an object that must not exist yet (409 AlreadyExists otherwise), in
        `namespace` or else its own."""
        metadata = manifest["metadata"]
        where = namespace or metadata.get("namespace")
        path = await self._path(manifest["apiVersion"], manifest["kind"], where)
        return await self._call(
            "POST", path, f"{manifest['kind']}/{metadata['name']}", body=manifest
        )

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        path = await self._path(api_version, kind, namespace, name)
        try:
            return await self._call("GET", path, f"{kind}/{name}")
        except KubeError as e:
            if e.not_found:
                return None
            raise

    async def list_objects(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[Manifest]:
        path = await self._path(api_version, kind, namespace)
        params = {"labelSelector": label_selector} if label_selector else None
        found = await self._call("GET", path, f"{kind} list", params=params)
        items: list[Manifest] = found.get("items") or []
        # A list's items come without their type; stored and desired objects are compared
        # whole (drift.unchanged), so they carry it as a GET's answer does.
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Any,
        *,
        content_type: str = MERGE_PATCH,
    ) -> Manifest:
        """A merge patch (a dict), or a JSON patch (a list, with `content_type=JSON_PATCH`)."""
        path = await self._path(api_version, kind, namespace, name)
        return await self._call(
            "PATCH", path, f"{kind}/{name}", body=patch, content_type=content_type
        )

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        """Delete one object; False when it was already gone."""
        path = await self._path(api_version, kind, namespace, name)
        try:
            await self._call("DELETE", path, f"{kind}/{name}")
        except KubeError as e:
            if e.not_found:
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
        path = await self._path(api_version, kind, namespace, name)
        await self._call(
            "PATCH",
            f"{path}/status",
            f"{kind}/{name} status",
            body={"status": status},
            content_type=MERGE_PATCH,
        )

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
        `kubectl logs --previous`), at most `limit_bytes` of them."""
        path = await self._path("v1", "Pod", namespace, name)
        response = await self.request(
            "GET",
            f"{path}/log",
            params={
                "container": container,
                "previous": previous,
                "tailLines": tail_lines,
                "limitBytes": limit_bytes,
            },
            timeout=timeout,
        )
        if not response.is_success:
            raise _refusal(response, f"Pod/{name} log")
        return response.content.decode(errors="replace")


__all__ = [
    "FIELD_MANAGER",
    "JSON_PATCH",
    "MERGE_PATCH",
    "ConfigError",
    "KindMissingError",
    "Kube",
    "KubeError",
    "KubeUnreachableError",
    "Manifest",
    "decoded",
    "load_config",
]
