#!/usr/bin/env python3
"""Start and stop a real Kubernetes control plane on loopback, with kwok for nodes and pods.

Why this exists: no container engine runs on our machines, so kind and minikube are out. The
binaries come from hack/testenv/build (Go modules, cached outside the repo); this script wires
them together: etcd, kube-apiserver with its own CA and client certificates, RBAC, a
service-account signing key, kube-controller-manager, kube-scheduler, and kwok driving three
fake nodes through stage files (ours in hack/testenv/stages/ plus kwok's stock ones).

Every environment is named and lives in its own state directory with ports picked free at
start, so two named environments run side by side. The script uses only the standard library
and the openssl command, so it works before the project's virtualenv exists.

    testenv.py up [NAME]     start (or reuse) NAME; the last line of stdout is its kubeconfig
    testenv.py down [NAME]   stop NAME and remove its state
    testenv.py status [NAME] exit 0 when NAME is up and healthy
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_COUNT = 3
# Pods get addresses from kwok's pool; the default /24 runs out at a few hundred pods, and the
# reconcile benchmark runs more than a thousand.
POD_CIDR = "10.244.0.1/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node=fake"
POD_JITTER_MS = 1000
# Fake nodes cost nothing, so they are large: many platforms (the reconcile benchmark runs
# 200) fit at once, and a test of Unschedulable pins something larger still.
NODE_CPU = 1000
NODE_MEMORY = "4Ti"
NODE_PODS = 1000

# kwok's stock stages that we use, relative to its module's kustomize/stage directory.
STOCK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/general/pod-create.yaml",
    "pod/general/pod-init-container-running.yaml",
    "pod/general/pod-init-container-completed.yaml",
    "pod/general/pod-ready.yaml",
    "pod/general/pod-complete.yaml",
    "volume/fast/pv-bind.yaml",
    "volume/fast/pv-delete.yaml",
    "volume/fast/pvc-provision.yaml",
    "volume/fast/pvc-delete.yaml",
)


class TestenvError(RuntimeError):
    """Something the user can act on; printed without a traceback."""


def log(message: str) -> None:
    print(f"testenv: {message}", file=sys.stderr, flush=True)


def read_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for raw in (HERE / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


def state_root() -> Path:
    base = os.environ.get("DUET_TESTENV_STATE")
    if base:
        return Path(base)
    return Path(tempfile.gettempdir()) / f"duet-testenv-{os.getuid()}"


@dataclass
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kwok_stages: Path
    helm: Path

    @classmethod
    def build(cls) -> Binaries:
        """Run hack/testenv/build (a no-op on a warm cache) and locate what it produced."""
        result = subprocess.run(
            [str(HERE / "build")], check=False, stdout=subprocess.PIPE, text=True
        )
        if result.returncode != 0:
            raise TestenvError("building the control plane failed (see the output above)")
        cache = Path(result.stdout.strip().splitlines()[-1])
        v = read_versions()
        k8s = cache / f"kubernetes-{v['KUBERNETES_VERSION']}" / "bin"
        kwok = cache / f"kwok-{v['KWOK_VERSION']}"
        return cls(
            etcd=cache / f"etcd-{v['ETCD_VERSION']}" / "bin" / "etcd",
            kube_apiserver=k8s / "kube-apiserver",
            kube_controller_manager=k8s / "kube-controller-manager",
            kube_scheduler=k8s / "kube-scheduler",
            kubectl=k8s / "kubectl",
            kwok=kwok / "bin" / "kwok",
            kwok_stages=kwok / "stages",
            helm=cache / f"helm-{v['HELM_VERSION']}" / "bin" / "helm",
        )


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int

    @classmethod
    def pick(cls) -> Ports:
        # Holding every socket until all are chosen keeps the three ports distinct; another
        # process could still take one before its server binds, which the health wait reports.
        sockets = []
        try:
            for _ in range(3):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                sockets.append(s)
            a, b, c = (s.getsockname()[1] for s in sockets)
            return cls(etcd_client=a, etcd_peer=b, apiserver=c)
        finally:
            for s in sockets:
                s.close()


class Env:
    """One named control plane and its state directory."""

    def __init__(self, name: str) -> None:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise TestenvError(f"environment name {name!r}: use letters, digits, - and _")
        self.name = name
        self.dir = state_root() / name
        self.pki = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.kubeconfig = self.dir / "kubeconfig"
        self.state_file = self.dir / "state.json"

    # -- state -------------------------------------------------------------------------------

    def load_state(self) -> dict[str, object] | None:
        try:
            state: dict[str, object] = json.loads(self.state_file.read_text())
            return state
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save_state(
        self, ports: Ports, pids: dict[str, int], timings: dict[str, float] | None = None
    ) -> None:
        state = {"ports": asdict(ports), "pids": pids, "timings": timings or {}}
        self.state_file.write_text(json.dumps(state, indent=2))

    # -- health ------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def api_healthy(self, port: int) -> bool:
        url = f"https://127.0.0.1:{port}/readyz"
        try:
            with urllib.request.urlopen(url, context=self.ssl_context(), timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def is_up(self) -> bool:
        state = self.load_state()
        if not state:
            return False
        pids = state.get("pids", {})
        ports = state.get("ports", {})
        assert isinstance(pids, dict)
        assert isinstance(ports, dict)
        return all(pid_alive(int(pid)) for pid in pids.values()) and self.api_healthy(
            int(ports["apiserver"])
        )

    # -- up ----------------------------------------------------------------------------------

    def up(self) -> Path:
        if self.is_up():
            log(f"{self.name} is already up")
            return self.kubeconfig
        if self.dir.exists():
            log(f"{self.name}: removing the state of a previous run that is no longer healthy")
            self.down(quiet=True)

        bins = Binaries.build()
        started = time.monotonic()
        self.dir.mkdir(parents=True)
        self.logs.mkdir()
        ports = Ports.pick()
        make_pki(self.pki)
        self.write_kubeconfigs(ports)
        (self.dir / "kwok-stages.yaml").write_text(stage_documents(bins.kwok_stages))

        pids: dict[str, int] = {}
        try:
            pids["etcd"] = self.spawn("etcd", etcd_args(bins, self.dir, ports))
            pids["kube-apiserver"] = self.spawn(
                "kube-apiserver", apiserver_args(bins, self.pki, ports)
            )
            self.save_state(ports, pids)
            self.wait_for(
                "the API server", lambda: self.api_healthy(ports.apiserver), timeout=60, pids=pids
            )
            api_ready = time.monotonic() - started
            pids["kube-controller-manager"] = self.spawn(
                "kube-controller-manager", controller_manager_args(bins, self.dir)
            )
            pids["kube-scheduler"] = self.spawn("kube-scheduler", scheduler_args(bins, self.dir))
            pids["kwok"] = self.spawn("kwok", kwok_args(bins, self.dir))
            self.save_state(ports, pids)
            self.bootstrap(bins)
            self.wait_for("three Ready, schedulable nodes", self.nodes_ready(bins), 90, pids)
        except BaseException:
            log(f"{self.name} failed to start; logs are in {self.logs}")
            self.stop_processes(pids)
            raise
        total = time.monotonic() - started
        # Kept for bench/testenv.py: how much of a start is the API server's own.
        self.save_state(ports, pids, {"apiserver_ready": api_ready, "nodes_ready": total})
        log(f"{self.name} is up in {total:.1f}s (API server ready after {api_ready:.1f}s)")
        return self.kubeconfig

    def spawn(self, name: str, args: list[str]) -> int:
        logfile = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        # A session of its own keeps the process alive after this script exits and out of
        # the reach of a Ctrl-C aimed at the caller; `down` stops it by pid.
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.dir,
        )
        logfile.close()
        return process.pid

    def wait_for(
        self, what: str, ready: Callable[[], bool], timeout: float, pids: dict[str, int]
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [name for name, pid in pids.items() if not pid_alive(pid)]
            if dead:
                tail = tail_log(self.logs / f"{dead[0]}.log")
                raise TestenvError(f"{dead[0]} exited while waiting for {what}:\n{tail}")
            if ready():
                return
            time.sleep(0.25)
        raise TestenvError(f"timed out after {timeout:.0f}s waiting for {what}; logs: {self.logs}")

    def write_kubeconfigs(self, ports: Ports) -> None:
        server = f"https://127.0.0.1:{ports.apiserver}"
        for user in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
            path = self.kubeconfig if user == "admin" else self.dir / f"{user}.kubeconfig"
            path.write_text(kubeconfig_yaml(self.name, server, self.pki, user))
            path.chmod(0o600)

    def kubectl(self, bins: Binaries, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(bins.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise TestenvError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def bootstrap(self, bins: Binaries) -> None:
        manifests = [(HERE / "manifests" / "storage-class.yaml").read_text()]
        manifests += [node_manifest(f"kwok-node-{i}") for i in range(NODE_COUNT)]
        self.kubectl(bins, "apply", "--server-side", "-f", "-", stdin="\n---\n".join(manifests))

    def nodes_ready(self, bins: Binaries) -> Callable[[], bool]:
        def check() -> bool:
            try:
                out = self.kubectl(bins, "get", "nodes", "-o", "json")
            except TestenvError:
                return False
            nodes = json.loads(out)["items"]
            ready = [n for n in nodes if node_is_schedulable(n)]
            return len(ready) >= NODE_COUNT

        return check

    # -- down --------------------------------------------------------------------------------

    def down(self, quiet: bool = False) -> None:
        # Tools that run beside the control plane (the demo's operator) leave `<name>.pid`
        # files in its state directory; they stop first, while the API server still answers.
        companions = {}
        for pidfile in self.dir.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                companions[pidfile.stem] = int(pidfile.read_text().strip())
        self.stop_processes(companions)
        state = self.load_state()
        if state:
            pids = state.get("pids", {})
            assert isinstance(pids, dict)
            self.stop_processes({k: int(v) for k, v in pids.items()})
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            if not quiet:
                log(f"{self.name} is down")
        elif not quiet:
            log(f"{self.name} was not running")

    @staticmethod
    def stop_processes(pids: dict[str, int]) -> None:
        # One at a time, in reverse start order: clients before the API server, the API server
        # before etcd. An API server whose etcd vanished under it hangs in shutdown until
        # killed; stopped in order, the whole plane is gone in about a second.
        for pid in reversed(list(pids.values())):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


# -- pure helpers --------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (only possible while our own process is its parent) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def tail_log(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def node_is_schedulable(node: dict[str, object]) -> bool:
    status = node.get("status", {})
    spec = node.get("spec", {})
    assert isinstance(status, dict)
    assert isinstance(spec, dict)
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    # The node-lifecycle controller lifts the not-ready taint once it sees the node Ready.
    tainted = any(
        t.get("key", "").startswith("node.kubernetes.io/") for t in spec.get("taints", []) or []
    )
    return ready and not tainted


def node_manifest(name: str) -> str:
    return f"""apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    topology.kubernetes.io/zone: zone-{name.rsplit("-", 1)[-1]}
status:
  allocatable: {{cpu: "{NODE_CPU}", memory: {NODE_MEMORY}, pods: "{NODE_PODS}"}}
  capacity: {{cpu: "{NODE_CPU}", memory: {NODE_MEMORY}, pods: "{NODE_PODS}"}}
"""


# Four pod-stage workers (kwok's default) each wait on a status PATCH; when a few hundred pods
# arrive at once and the API server is busy, that queue, not the CPU, paced their readiness.
# kwok v0.8 does not default the options of a KwokConfiguration read from --config (a zero
# lease parallelism stops it at start), so the others are spelled out at their defaults.
KWOK_OPTIONS = """
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 16
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
"""


def stage_documents(stock: Path) -> str:
    # kwok's general pod stages wait 1 s plus up to 5 s of jitter at each step, so a pod takes
    # up to 12 s to turn Ready; a jitter of 1 s keeps the lifecycle (Pending, then Running and
    # Ready) while tests and benchmarks spend their time on our code, not on kwok's dice.
    docs = [
        (stock / rel)
        .read_text()
        .replace("jitterDurationMilliseconds: 5000", f"jitterDurationMilliseconds: {POD_JITTER_MS}")
        for rel in STOCK_STAGES
    ]
    docs += [p.read_text() for p in sorted((HERE / "stages").glob("*.yaml"))]
    docs.append(KWOK_OPTIONS)
    return "\n---\n".join(d.strip() for d in docs) + "\n"


def kubeconfig_yaml(name: str, server: str, pki: Path, user: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: duet-{name}
  cluster:
    server: {server}
    certificate-authority: {pki / "ca.crt"}
users:
- name: {user}
  user:
    client-certificate: {pki / f"{user}.crt"}
    client-key: {pki / f"{user}.key"}
contexts:
- name: duet-{name}
  context: {{cluster: duet-{name}, user: {user}}}
current-context: duet-{name}
"""


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate and one client certificate per component.

    ECDSA keys: generating them is instant, which matters for a warm start under 20 s.
    """
    pki.mkdir(mode=0o700)

    def key(name: str) -> str:
        path = str(pki / f"{name}.key")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
        return path

    def signed(name: str, subject: str, ext: str) -> None:
        csr, extfile = pki / f"{name}.csr", pki / f"{name}.ext"
        extfile.write_text(ext)
        openssl("req", "-new", "-key", key(name), "-subj", subject, "-out", str(csr))
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"),
            "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "30",
            "-extfile", str(extfile), "-out", str(pki / f"{name}.crt"),
        )  # fmt: skip
        csr.unlink()
        extfile.unlink()

    openssl(
        "req", "-x509", "-new", "-key", key("ca"), "-subj", "/CN=duet-testenv-ca", "-days", "30",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(pki / "ca.crt"),
    )  # fmt: skip
    server_sans = ",".join(
        [
            "IP:127.0.0.1",
            f"IP:{KUBERNETES_SERVICE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    signed(
        "apiserver",
        "/CN=kube-apiserver",
        f"keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        f"subjectAltName={server_sans}\n",
    )
    client_ext = "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    # Each component gets the identity that the API server's bootstrap RBAC policy grants.
    signed("admin", "/O=system:masters/CN=duet-admin", client_ext)
    signed("kube-controller-manager", "/CN=system:kube-controller-manager", client_ext)
    signed("kube-scheduler", "/CN=system:kube-scheduler", client_ext)
    signed("kwok", "/O=system:masters/CN=kwok", client_ext)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(pki / "sa.key"))  # fmt: skip
    openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def etcd_args(bins: Binaries, state: Path, ports: Ports) -> list[str]:
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(bins.etcd),
        "--name=testenv",
        f"--data-dir={state / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{ports.etcd_client}",
        f"--advertise-client-urls=http://127.0.0.1:{ports.etcd_client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=testenv={peer}",
        # A throwaway test cluster: durability buys nothing and fsync costs seconds on a
        # shared disk.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_args(bins: Binaries, pki: Path, ports: Ports) -> list[str]:
    return [
        str(bins.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--profiling=false",
        "--event-ttl=1h",
        "--v=0",
    ]


# kwokctl's `disableQPSLimits`: a fake cluster has no kubelets to protect, and the default
# 20 requests/s of the controller-manager's clients, not the API server, was what bounded
# how fast a few hundred platforms' pods could be created (kwok's own client is unlimited).
UNTHROTTLED_CLIENT = ("--kube-api-qps=5000", "--kube-api-burst=10000")


def controller_manager_args(bins: Binaries, state: Path) -> list[str]:
    pki = state / "pki"
    return [
        str(bins.kube_controller_manager),
        f"--kubeconfig={state / 'kube-controller-manager.kubeconfig'}",
        "--secure-port=0",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Sooner than the default 50 s, so a stopped kwok shows as NotReady nodes quickly.
        "--node-monitor-grace-period=20s",
        *UNTHROTTLED_CLIENT,
        # Five StatefulSet workers (the default) queue up behind each other when a few
        # hundred platforms arrive at once; they wait on the API, not on the CPU.
        "--concurrent-statefulset-syncs=20",
        "--v=0",
    ]


def scheduler_args(bins: Binaries, state: Path) -> list[str]:
    return [
        str(bins.kube_scheduler),
        f"--kubeconfig={state / 'kube-scheduler.kubeconfig'}",
        "--secure-port=0",
        "--leader-elect=false",
        *UNTHROTTLED_CLIENT,
        "--v=0",
    ]


def kwok_args(bins: Binaries, state: Path) -> list[str]:
    return [
        str(bins.kwok),
        f"--kubeconfig={state / 'kwok.kubeconfig'}",
        f"--config={state / 'kwok-stages.yaml'}",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}",
        f"--cidr={POD_CIDR}",
        "--node-lease-duration-seconds=40",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("name", nargs="?", default="default")
    args = parser.parse_args(argv)
    try:
        env = Env(args.name)
        if args.command == "up":
            print(env.up())
        elif args.command == "down":
            env.down()
        else:
            healthy = env.is_up()
            print("up" if healthy else "down")
            return 0 if healthy else 1
    except TestenvError as e:
        log(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
