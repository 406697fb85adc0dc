"""The Helm chart without a cluster: lint and template in each mode, the values schema, the
operator's pod security, least-privilege RBAC traced to the code, the alerts (promtool),
every query naming a metric the operator exports, and the generated copies kept fresh."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from duet_agents.query.server import Metrics as QueryServerMetrics
from duet_operator import metrics
from duet_operator.main import build_registry
from duet_operator.models import GROUP, QueryAgent
from duet_operator.reconcile import CHILD_KINDS
from duet_operator.render.config import RenderConfig
from duet_operator.render.queryagent import build_query_agent
from duet_operator.settings import OperatorSettings
from tests.support.cluster import REPO
from tests.support.testenv_module import load

CHART = REPO / "charts" / "duet"
KUBE_VERSION = "v1.27.0"  # the oldest the chart supports; helm template assumes 1.20

MODES: dict[str, list[str]] = {
    "default": [],
    "every toggle on": [
        "--set",
        "serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboards.enabled=true",
        "--set",
        "llm.anthropic.secretRef.name=llm,llm.anthropic.secretRef.key=anthropic",
        "--set",
        "llm.openai.secretRef.name=llm,llm.openai.secretRef.key=openai",
        "--set",
        "llm.openai.baseURL=http://127.0.0.1:9999/v1",
        # --set reads 0.2 as a string; the schema wants a number.
        "--set-json",
        'planner.prices={"cpuCoreMonthUSD": 30, "storageGiBMonthUSD": 0.2}',
        "--set-json",
        'llm.tokenPrices={"openai": {"local-llama": {"inputUSDPerMTok": 0, "outputUSDPerMTok": 0}}}',  # noqa: E501
        "--set",
        "autonomy.defaultMode=auto,replicaCount=2",
    ],
    "watchNamespaces": ["--set", "watchNamespaces={shop,ads}"],
    "watchNamespaces with peering": ["--set", "watchNamespaces={shop,ads},replicaCount=3"],
}
# What kopf itself watches, beside our resources (its docs, "Deployment" / "RBAC").
FRAMEWORK = {
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("", "namespaces"),
    ("", "events"),
    ("kopf.dev", "clusterkopfpeerings"),
    ("kopf.dev", "kopfpeerings"),
}
# Verbs no operator of ours needs; any of them would let the ServiceAccount grant itself more.
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


@functools.cache
def helm() -> str:
    return str(load().Binaries.build().helm)


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, check=False)


@functools.cache
def _render(mode: str) -> tuple[dict[str, Any], ...]:
    result = run_helm(
        "template", "duet", str(CHART), "--namespace", "duet-system",
        "--kube-version", KUBE_VERSION, *MODES[mode],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def render(mode: str = "default") -> list[dict[str, Any]]:
    return list(_render(mode))


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def deployment(mode: str = "default") -> dict[str, Any]:
    (found,) = find(render(mode), "Deployment")
    return found


def env_of(mode: str) -> dict[str, Any]:
    (container,) = deployment(mode)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def rules_of(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [rule for role in find(docs, kind) for rule in role["rules"]]


def granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


# -- lint, template, schema ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_lint_is_clean(mode: str) -> None:
    result = run_helm("lint", "--strict", str(CHART), *MODES[mode])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


def test_default_install_is_the_operator_and_its_access() -> None:
    kinds = sorted(d["kind"] for d in render())
    assert kinds == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"]
    )
    for doc in render():
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "duet-system"


def test_every_toggle_adds_its_objects() -> None:
    docs = render("every toggle on")
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "ClusterKopfPeering"} <= kinds
    operator_monitor, query_monitor = sorted(
        find(docs, "ServiceMonitor"), key=lambda m: m["metadata"]["name"]
    )
    monitor = operator_monitor
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    # The platform's own namespace label must survive the scrape.
    assert endpoint["honorLabels"] is True
    # The alerts look for job="duet": the Service's name label.
    (service,) = find(docs, "Service")
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "duet"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    # The query agents' Services, as the operator renders them, wherever they run.
    assert query_monitor["spec"]["endpoints"][0]["port"] == "http"
    assert query_monitor["spec"]["namespaceSelector"] == {"any": True}
    agent = QueryAgent.model_validate(
        {"metadata": {"name": "ask", "namespace": "x"}, "spec": {"platformRef": {"name": "p"}}}
    )
    (agent_service,) = [
        m for m in build_query_agent(agent, RenderConfig()) if m["kind"] == "Service"
    ]
    labels = agent_service["metadata"]["labels"]
    assert query_monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert agent_service["spec"]["ports"][0]["name"] == "http"


def test_the_prometheus_rule_is_the_rule_file() -> None:
    (rule,) = find(render("every toggle on"), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())


def test_dashboards_are_configmaps_grafana_picks_up() -> None:
    dashboards = find(render("every toggle on"), "ConfigMap")
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert files
    assert sorted(k for d in dashboards for k in d["data"]) == files
    for configmap in dashboards:
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        for name, text in configmap["data"].items():
            assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("replicaCount=lots", "/replicaCount"),
        ("replicaCount=-1", "/replicaCount"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces/0"),
        ("autonomy.defaultMode=yolo", "/autonomy/defaultMode"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("planner.prices.cpuCoreMonthUSD=-1", "/planner/prices/cpuCoreMonthUSD"),
        ("planner.prices.gpuHourUSD=3", "/planner/prices"),
        ("serviceMonitor.enabled=yes", "/serviceMonitor/enabled"),
        ("llm.openai.secretRef.name=only-a-name", "/llm/openai/secretRef"),
        ("metrics.port=70000", "/metrics/port"),
        ("replicas=2", "additional properties 'replicas'"),
    ],
)
def test_the_schema_refuses_bad_values(setting: str, field: str) -> None:
    result = run_helm("template", "duet", str(CHART), "--kube-version", KUBE_VERSION,
                      "--set", setting)  # fmt: skip
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


# -- the operator's pod ----------------------------------------------------------------------


def test_the_operator_runs_without_privileges() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # Writable only where a volume is mounted: scratch, and the platform memory's SQLite file.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/var/lib/duet"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    assert container["resources"]["requests"].keys() == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]


def test_probes_and_the_service_use_the_metrics_port() -> None:
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": 8080, "protocol": "TCP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["args"] == ["operator", "run"]
    (service,) = find(render(), "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert env_of("default")["DUET_METRICS_PORT"] == "8080"


def test_the_operator_reads_the_settings_the_chart_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = env_of("every toggle on") | env_of("watchNamespaces")
    for name, value in env.items():
        if name.startswith("DUET_") and isinstance(value, str):
            monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert settings.namespaces == ["shop", "ads"]
    assert settings.metrics_port == 8080
    assert settings.prices.cpu_core_month_usd == 30
    assert settings.prices.storage_gib_month_usd == 0.2
    assert settings.prices.memory_gib_month_usd == OperatorSettings().prices.memory_gib_month_usd
    local = settings.token_prices().price("openai", "local-llama")
    assert local is not None
    assert local.output_usd_per_mtok == 0
    # Query agents run the operator's own image.
    (container,) = deployment("every toggle on")["spec"]["template"]["spec"]["containers"]
    assert settings.duet_image == container["image"] == "ghcr.io/aidatalabs/duet:0.1.0"


def test_model_keys_and_the_autonomy_default_are_passed_on() -> None:
    # The SDKs read the keys and endpoints from these names; the autonomy default is for the
    # healer.
    env = env_of("every toggle on")
    assert env["DUET_AUTONOMY_DEFAULT_MODE"] == "auto"
    assert env["ANTHROPIC_API_KEY"] == {"secretKeyRef": {"name": "llm", "key": "anthropic"}}
    assert env["OPENAI_API_KEY"] == {"secretKeyRef": {"name": "llm", "key": "openai"}}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:9999/v1"
    assert "ANTHROPIC_API_KEY" not in env_of("default")


def test_one_replica_never_overlaps_and_more_enable_peering() -> None:
    assert deployment()["spec"]["strategy"] == {"type": "Recreate"}
    assert "DUET_PEERING_NAME" not in env_of("default")
    assert not find(render(), "ClusterKopfPeering")

    docs = render("every toggle on")
    assert deployment("every toggle on")["spec"]["replicas"] == 2
    (peering,) = find(docs, "ClusterKopfPeering")
    assert env_of("every toggle on")["DUET_PEERING_NAME"] == peering["metadata"]["name"]
    assert granted(rules_of(docs, "ClusterRole"))[("kopf.dev", "clusterkopfpeerings")]

    docs = render("watchNamespaces with peering")
    assert sorted(p["metadata"]["namespace"] for p in find(docs, "KopfPeering")) == [
        "ads",
        "shop",
    ]
    assert not find(docs, "ClusterKopfPeering")
    for role in find(docs, "Role"):
        assert ("kopf.dev", "kopfpeerings") in granted(role["rules"])


def test_the_peering_crds_ship_with_the_chart() -> None:
    crds = [
        d
        for p in (CHART / "crds").glob("kopf.dev_*.yaml")
        for d in yaml.safe_load_all(p.read_text())
    ]
    assert {c["spec"]["names"]["kind"] for c in crds} == {"ClusterKopfPeering", "KopfPeering"}


# -- RBAC ------------------------------------------------------------------------------------


def code_resources() -> dict[tuple[str, str], str]:
    """(group, plural) of everything the operator's code touches, and why."""
    used: dict[tuple[str, str], str] = {}
    # What the kopf handlers watch (kopf keeps them in its registries; no public listing).
    registry = build_registry(OperatorSettings(), None)
    for sub in (registry._changing, registry._watching, registry._spawning):
        for handler in sub.get_all_handlers():
            selector = handler.selector
            assert selector is not None
            group = selector.group or ""
            plural = str(selector.plural or selector.any_name or "")
            used[(group, plural)] = "watched by a kopf handler"
    # What the reconcile lists and applies, and the claims it grows.
    for api_version, kind in (*CHILD_KINDS, ("v1", "PersistentVolumeClaim")):
        group = api_version.rpartition("/")[0]
        used.setdefault((group, kind.lower() + "s"), "listed and applied by the reconcile")
    used[("storage.k8s.io", "storageclasses")] = "listed by the healer (may a claim grow?)"
    used[("", "pods/log")] = "a crashed container's last lines, read by the healer's probes"
    for group, plural in list(used):
        if group == GROUP:
            used[(group, f"{plural}/status")] = "status written by its reconcile"
            used[(group, f"{plural}/finalizers")] = "its children's blockOwnerDeletion"
    return used


@pytest.mark.parametrize("mode", MODES)
def test_rbac_has_no_wildcards_or_dangerous_verbs(mode: str) -> None:
    docs = render(mode)
    for rule in rules_of(docs, "ClusterRole") + rules_of(docs, "Role"):
        for key in ("verbs", "resources", "apiGroups"):
            assert "*" not in rule[key], rule
        assert not set(rule["verbs"]) & DANGEROUS_VERBS, rule
        assert "nonResourceURLs" not in rule
        assert "resourceNames" not in rule


@pytest.mark.parametrize("mode", MODES)
def test_rbac_grants_only_what_the_code_uses(mode: str) -> None:
    docs = render(mode)
    grants = granted(rules_of(docs, "ClusterRole") + rules_of(docs, "Role"))
    allowed = code_resources().keys() | FRAMEWORK
    assert grants.keys() <= allowed, grants.keys() - allowed
    # Nothing outside the namespaces served can be changed, except kopf's own peering.
    cluster = granted(rules_of(docs, "ClusterRole"))
    for resource, verbs in cluster.items():
        if resource not in {("kopf.dev", "clusterkopfpeerings")} and resource in FRAMEWORK:
            assert verbs <= {"get", "list", "watch", "create"}, (resource, verbs)


@pytest.mark.parametrize("mode", MODES)
def test_rbac_covers_what_the_code_watches(mode: str) -> None:
    docs = render(mode)
    watchers = [r for r, why in code_resources().items() if why == "watched by a kopf handler"]
    assert watchers
    scopes = [granted(r["rules"]) for r in find(docs, "Role")] or [
        granted(rules_of(docs, "ClusterRole"))
    ]
    for grants in scopes:
        for resource in watchers:
            assert {"list", "watch"} <= grants.get(resource, set()), resource


def test_watch_namespaces_confine_namespaced_access_to_roles() -> None:
    docs = render("watchNamespaces")
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ads", "shop"]
    bindings = find(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ads", "shop"]
    for binding in bindings:
        (subject,) = binding["subjects"]
        assert subject == {"kind": "ServiceAccount", "name": "duet", "namespace": "duet-system"}
    # Cluster-wide, only what kopf needs to discover (CRDs and namespaces) and the
    # cluster-scoped StorageClasses the healer reads, all read-only.
    assert granted(rules_of(docs, "ClusterRole")) == {
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
        ("", "namespaces"): {"list", "watch"},
        ("storage.k8s.io", "storageclasses"): {"list"},
    }
    assert env_of("watchNamespaces")["DUET_NAMESPACES"] == '["shop","ads"]'


def test_all_namespaces_mode_does_not_read_namespaces() -> None:
    # kopf looks at namespaces only when it serves some of them.
    assert ("", "namespaces") not in granted(rules_of(render(), "ClusterRole"))


# -- generated copies ------------------------------------------------------------------------


def load_script(name: str) -> ModuleType:
    path = REPO / "hack" / name
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_chart_crds_are_the_generated_ones() -> None:
    result = subprocess.run([str(REPO / "hack" / "sync-chart-crds"), "--check"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_sync_chart_crds_notices_and_repairs_a_difference(tmp_path: Path) -> None:
    sync = load_script("sync-chart-crds")
    source, target = tmp_path / "crds", tmp_path / "chart-crds"
    source.mkdir()
    (source / "duet.aidatalabs.ai_a.yaml").write_text("a: 1\n")
    (source / "duet.aidatalabs.ai_b.yaml").write_text("b: 1\n")
    target.mkdir()
    (target / "duet.aidatalabs.ai_a.yaml").write_text("a: 2\n")
    (target / "duet.aidatalabs.ai_gone.yaml").write_text("old\n")
    (target / "kopf.dev_peerings.yaml").write_text("kept\n")
    assert sorted(sync.differences(source, target)) == [
        "duet.aidatalabs.ai_a.yaml: differs",
        "duet.aidatalabs.ai_b.yaml: missing",
        "duet.aidatalabs.ai_gone.yaml: stale (no crds/duet.aidatalabs.ai_gone.yaml)",
    ]
    sync.sync(source, target)
    assert sync.differences(source, target) == []
    assert (target / "kopf.dev_peerings.yaml").read_text() == "kept\n"


def test_the_install_manifest_is_rendered_from_the_chart() -> None:
    result = subprocess.run([str(REPO / "hack" / "render-install"), "--check"],
                            capture_output=True, text=True, check=False,
                            env=os.environ | {"HELM": helm()})  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all((REPO / "manifests/install/duet.yaml").read_text()) if d]
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "duet-system", "labels": {"app.kubernetes.io/part-of": "duet"}},
    }
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole"} <= {d["kind"] for d in docs}


# -- alerts and dashboards -------------------------------------------------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
# Grafana's variables, as Prometheus would see them once Grafana has substituted them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$namespace": ".*",
    "$platform": ".*",
    "$agent": ".*",
}
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers that are neither
    functions nor keywords, once strings, label matchers, ranges and grouping are gone."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    return {
        match.group()
        for match in IDENTIFIER.finditer(text)
        if match.group() not in KEYWORDS and not text[match.end() :].lstrip().startswith("(")
    }


def exported_series() -> set[str]:
    """Every series name the operator's and the query servers' registries can expose."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names: set[str] = set()
    for registry in (metrics.REGISTRY, QueryServerMetrics().registry):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def alert_expressions() -> list[str]:
    groups = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    exprs = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
        for variable in dashboard["templating"]["list"]:
            query = variable.get("query")
            if isinstance(query, dict):
                exprs.append(query["query"])
    return exprs


def test_metric_names_are_found_in_any_expression() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{job="x", b=~"c|d"}[5m]))) '
        "/ on (job) group_left b_total offset 1h > bool 2e3"
    )
    assert metric_names(expr) == {"a_bucket", "b_total"}
    assert metric_names('absent(up{job="duet"} == 1)') == {"up"}


def test_every_query_names_a_metric_the_operator_exports() -> None:
    known = exported_series() | {"up"}  # `up` is Prometheus's own, per scrape target
    assert {"duet_reconcile_total", "duet_platforms"} <= known
    queries = alert_expressions() + dashboard_expressions()
    assert len(queries) >= 10
    for query in queries:
        # A Grafana variable's label_values(metric, label): the metric is what matters.
        expr = (
            query.removeprefix("label_values(").split(",")[0] if "label_values(" in query else query
        )
        names = metric_names(expr)
        assert names, query
        assert names <= known, (query, names - known)


def test_dashboards_ask_for_their_data_source_and_use_only_known_variables() -> None:
    # Grafana imports a dashboard under its uid, and a hard-coded data source uid exists only
    # in the cluster it was exported from.
    uids = set()
    for path in sorted((CHART / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", path.name
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            for node in (panel, *panel["targets"]):
                assert node["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for used in re.findall(r"\$\w+", json.dumps(panel["targets"])):
                assert used in GRAFANA_VARIABLES or used[1:] in variables, (path.name, used)
        for name in variables.keys() - {"datasource"}:
            assert f"${name}" in GRAFANA_VARIABLES, (path.name, name)
    assert len(uids) == len(list((CHART / "dashboards").glob("*.json")))


@needs_promtool
def test_the_rule_file_is_valid() -> None:
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(CHART / "files/alerts.yaml")],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alerts_fire_when_they_should() -> None:
    result = subprocess.run([str(PROMTOOL), "test", "rules", str(CHART / "tests/alerts-test.yaml")],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    rules = []
    for i, query in enumerate(dashboard_expressions()):
        if query.startswith("label_values("):
            continue
        expr = functools.reduce(lambda e, v: e.replace(*v), GRAFANA_VARIABLES.items(), query)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
