"""docs/metrics.md against the code: every metric the operator and the query server register
is documented under the process that serves it, with its type and labels, and the page names
no metric that is not registered."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

import duet_operator.main  # noqa: F401  (every module of the operator, whatever registers at import)
from duet_agents.query.server import Metrics as QueryServerMetrics
from duet_operator import metrics
from tests.support.cluster import REPO

DOC = REPO / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_:][a-z0-9_:]*)` \| (?P<type>\w+) \|(?P<labels>[^|]*)\|")


@dataclass(frozen=True)
class Metric:
    name: str  # as exposed: a counter with its _total
    type: str
    labels: frozenset[str]


def registered(registry: CollectorRegistry) -> dict[str, Metric]:
    """The metrics of `registry`, labels included. A labelled metric with no child yet has no
    samples to read its labels from, so they come from the collectors themselves (private
    attributes of prometheus_client, stable since 0.4)."""
    found: dict[str, Metric] = {}
    for collector in list(registry._collector_to_names):
        assert isinstance(collector, MetricWrapperBase), (
            f"{collector!r} is not a plain metric: document it and teach this test to read it"
        )
        name = collector._name + ("_total" if collector._type == "counter" else "")
        found[name] = Metric(name, str(collector._type), frozenset(collector._labelnames))
    return found


def documented(text: str) -> dict[str, dict[str, Metric]]:
    """The metric tables of the page, by the `## ` section they are under."""
    sections: dict[str, dict[str, Metric]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif match := ROW.match(line):
            labels = frozenset(re.findall(r"`([^`]+)`", match["labels"]))
            metric = Metric(match["name"], match["type"], labels)
            sections.setdefault(section, {})[metric.name] = metric
    return sections


PROCESSES = {
    "Operator": metrics.REGISTRY,
    "Query server": QueryServerMetrics().registry,
}


@pytest.fixture(scope="module")
def doc() -> dict[str, dict[str, Metric]]:
    return documented(DOC.read_text())


@pytest.mark.parametrize("process", PROCESSES)
def test_every_registered_metric_is_documented_with_its_type_and_labels(
    process: str, doc: dict[str, dict[str, Metric]]
) -> None:
    code = registered(PROCESSES[process])
    assert code, f"nothing registered for {process}?"
    page = doc.get(process, {})
    missing = sorted(code.keys() - page.keys())
    assert not missing, f"docs/metrics.md, section {process!r}, does not describe {missing}"
    for name, metric in code.items():
        assert page[name] == metric, f"docs/metrics.md says {page[name]}, the code {metric}"


@pytest.mark.parametrize("process", PROCESSES)
def test_the_page_names_only_metrics_the_code_registers(
    process: str, doc: dict[str, dict[str, Metric]]
) -> None:
    stale = sorted(doc.get(process, {}).keys() - registered(PROCESSES[process]).keys())
    assert not stale, f"docs/metrics.md, section {process!r}, describes unregistered {stale}"


def test_metric_rows_are_only_under_a_process() -> None:
    assert set(documented(DOC.read_text())) == set(PROCESSES)


def test_the_reader_sees_names_types_labels_and_sections() -> None:
    text = "\n".join(
        [
            "## Operator",
            "| metric | type | labels | meaning |",
            "| --- | --- | --- | --- |",
            "| `a_total` | counter | `kind`, `result` | with `backticks` in | the meaning |",
            "| `b_seconds` | histogram | | no labels |",
            "## Query server",
            "| `c` | gauge | `x` | one |",
        ]
    )
    assert documented(text) == {
        "Operator": {
            "a_total": Metric("a_total", "counter", frozenset({"kind", "result"})),
            "b_seconds": Metric("b_seconds", "histogram", frozenset()),
        },
        "Query server": {"c": Metric("c", "gauge", frozenset({"x"}))},
    }


def test_the_registry_walk_sees_unused_labelled_metrics() -> None:
    # A metric not incremented yet (no sample at all) must still be found, labels and all.
    registry = CollectorRegistry()
    Counter("duet_things", "Things.", ["kind"], registry=registry)
    Histogram("duet_wait_seconds", "Waits.", registry=registry)
    Gauge("duet_level", "Level.", ["a", "b"], registry=registry)
    assert registered(registry) == {
        "duet_things_total": Metric("duet_things_total", "counter", frozenset({"kind"})),
        "duet_wait_seconds": Metric("duet_wait_seconds", "histogram", frozenset()),
        "duet_level": Metric("duet_level", "gauge", frozenset({"a", "b"})),
    }
