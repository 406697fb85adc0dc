"""The platform memory in the operator, without a cluster: planning with lessons under the
pins and the healer's floors, the cache that keeps a running design, the store behind its
thread and timeout (a real SQLite file), and the records the healer makes of its decisions."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from duet_agents.healer import ActionType, Component, DecisionPhase, SymptomType, decide, diagnose
from duet_agents.healer.symptoms import detect
from duet_agents.memory import MemorySettings, MemoryStore, RemediationRecord
from duet_agents.planner import capacity
from duet_agents.planner.adjustments import AdjustedField, Adjustment
from duet_agents.planner.models import PlatformDesign, PriceTable
from duet_agents.units import parse_quantity
from duet_operator import platform_memory
from duet_operator.healing import (
    COMPONENT_LABEL,
    NOT_EXECUTABLE,
    autonomy_of,
    memory_record,
    moved,
    remediation_body,
)
from duet_operator.models import DataPlatform
from duet_operator.models.dataplatform import Phase
from duet_operator.models.remediation import Remediation, RemediationPhase
from duet_operator.planning import plan_platform
from duet_operator.platform_memory import (
    PlatformMemory,
    first_ready_seconds,
    load_description_model,
    platform_key,
)
from duet_operator.render.naming import Names
from tests.support.platforms import platform
from tests.unit.test_healer_playbook import shard
from tests.unit.test_healer_readings import NOW
from tests.unit.test_reconcile_pure import model_plan

PRICES = PriceTable()
PATTERN = "OOMKilled/clickhouse/raiseMemory"
REQUIREMENTS = {"dataVolume": "2Ti", "ingestRowsPerSecond": 50_000}


def clicks(name: str = "clicks", namespace: str = "shop", **spec: Any) -> DataPlatform:
    spec.setdefault("requirements", REQUIREMENTS)
    p = platform(name, namespace, **spec)
    meta = p.metadata.model_copy(update={"creation_timestamp": NOW - timedelta(minutes=3)})
    return p.model_copy(update={"metadata": meta})


def memory_gib(*, design: PlatformDesign | None) -> int:
    assert design is not None
    return int(parse_quantity(design.clickhouse.resources.memory)) // 2**30


def with_status(p: DataPlatform, **status: Any) -> DataPlatform:
    return p.model_copy(update={"status": p.status.model_copy(update=status)})


def oom_fixed(store: MemoryStore, p: DataPlatform, factor: float = 1.5) -> str:
    """`p` designed, OOM-killed, healed by raising its memory `factor` times, verified."""
    request = p.spec.plan_request()
    design = capacity.plan(request, PRICES)
    store.record_design(platform_key(p), request, design, recorded_at=NOW)
    before = design.clickhouse.resources.memory
    after = f"{int(memory_gib(design=design) * factor)}Gi"
    store.record_remediation(
        platform_key(p),
        RemediationRecord(
            name=f"{p.metadata.name}-oom-1",
            symptom=SymptomType.OOM_KILLED,
            component=Component.CLICKHOUSE,
            action=ActionType.RAISE_MEMORY,
            before=before,
            after=after,
            phase=DecisionPhase.VERIFIED,
            decided_at=NOW + timedelta(minutes=5),
        ),
    )
    return after


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with MemoryStore.open(f"sqlite:///{tmp_path / 'memory.db'}") as opened:
        yield opened


# -- planning ------------------------------------------------------------------------------------


def test_a_similar_new_platform_is_planned_with_the_lesson_and_names_its_source(
    store: MemoryStore,
) -> None:
    oom_fixed(store, clicks())
    new = clicks("views", "ads", requirements={"dataVolume": "2500Gi"})
    plain = plan_platform(new, PRICES)
    lessons = store.lessons_for(new.spec.plan_request())
    planned = plan_platform(new, PRICES, lessons=lessons)
    assert planned.changed
    assert planned.accepted
    assert memory_gib(design=planned.design) == memory_gib(design=plain.design) * 3 // 2
    assert planned.design is not None
    (why,) = [line for line in planned.design.rationale if PATTERN in line]
    assert why.startswith("memory per replica: ")
    assert "shop/clicks (similarity" in why
    # The lessons are not part of the spec's hash: the cache key is the same with or without.
    assert planned.plan_hash == plain.plan_hash


def test_a_design_in_force_is_not_redesigned_by_a_lesson_learnt_later(store: MemoryStore) -> None:
    running = clicks("views", "ads")
    first = plan_platform(running, PRICES)
    assert first.design is not None
    oom_fixed(store, clicks())
    lessons = store.lessons_for(running.spec.plan_request())
    assert lessons
    cached = with_status(running, design=first.design, plan_hash=first.plan_hash)
    again = plan_platform(cached, PRICES, lessons=lessons)
    assert not again.changed
    assert again.design == first.design
    # A spec change plans again, and then the lesson applies.
    changed = cached.model_copy(
        update={"spec": clicks("views", "ads", requirements={"dataVolume": "2100Gi"}).spec}
    )
    replanned = plan_platform(changed, PRICES, lessons=lessons)
    assert replanned.changed
    plain = plan_platform(changed, PRICES)
    assert memory_gib(design=replanned.design) > memory_gib(design=plain.design)


def test_a_pin_beats_the_lesson_and_the_healers_raise_stays_a_floor(store: MemoryStore) -> None:
    oom_fixed(store, clicks())
    lessons = store.lessons_for(clicks().spec.plan_request())

    pinned = clicks("pinned", clickhouse={"resources": {"memory": "20Gi"}})
    design = plan_platform(pinned, PRICES, lessons=lessons).design
    assert design is not None
    assert design.clickhouse.resources.memory == "20Gi"
    assert any("kept — pinned (spec.clickhouse.resources.memory)" in r for r in design.rationale)

    plain_gib = memory_gib(design=plan_platform(clicks("x"), PRICES).design)
    learnt_gib = memory_gib(design=plan_platform(clicks("x"), PRICES, lessons=lessons).design)
    assert learnt_gib > plain_gib

    def raised_to(gib: int) -> DataPlatform:
        adjustment = Adjustment(
            field=AdjustedField.CLICKHOUSE_MEMORY,
            value=f"{gib}Gi",
            remediation="healed-oom-1",
            reason="OOMKilled on pod/healed-clickhouse-0-0",
        )
        return with_status(clicks("healed"), adjustments=[adjustment])

    # The healer raised it further than the lesson would: its floor holds.
    higher = plan_platform(raised_to(learnt_gib * 2), PRICES, lessons=lessons).design
    assert memory_gib(design=higher) == learnt_gib * 2
    assert higher is not None
    assert any(line.startswith("healer: ") for line in higher.rationale)
    # The healer's floor is lower than the lesson's figure: the lesson's stands.
    lower = plan_platform(raised_to(plain_gib + 1), PRICES, lessons=lessons).design
    assert memory_gib(design=lower) == learnt_gib


def test_a_models_design_gets_the_lessons_too(store: MemoryStore) -> None:
    oom_fixed(store, clicks())
    new = clicks("modelled", planner={"provider": "openai", "model": "gpt-test"})
    lessons = store.lessons_for(new.spec.plan_request())
    proposal = model_plan(new)
    planned = plan_platform(new, PRICES, proposal=proposal, lessons=lessons)
    assert planned.design is not None
    assert memory_gib(design=planned.design) > memory_gib(design=proposal.design)
    assert any(PATTERN in line for line in planned.design.rationale)


def test_the_first_ready_is_timed_once() -> None:
    p = clicks()
    now = NOW
    assert first_ready_seconds(p, Phase.READY, now) == 180
    assert first_ready_seconds(p, Phase.PROVISIONING, now) is None
    ready = with_status(p, phase=Phase.READY)
    assert first_ready_seconds(ready, Phase.READY, now) is None
    degraded = with_status(p, phase=Phase.DEGRADED)
    assert first_ready_seconds(degraded, Phase.READY, now) is None


# -- the store behind its thread and timeout -----------------------------------------------------


def settings_for(url: str, **fields: Any) -> MemorySettings:
    return MemorySettings(url=SecretStr(url), **fields)


def test_an_unopenable_store_says_so_once_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="duet.memory")
    # Nothing listens on port 1: the connection is refused at once.
    url = "postgresql://duet:hunter2zebra@127.0.0.1:1/duet?connect_timeout=2"
    memory = asyncio.run(PlatformMemory.start(settings_for(url)))
    assert not memory.enabled
    (line,) = [r.getMessage() for r in caplog.records]
    assert "cannot be opened" in line
    assert "runs without it" in line
    assert "hunter2zebra" not in caplog.text
    # Without a store, every call is "nothing recorded".
    p = clicks()
    assert asyncio.run(memory.lessons_for(p.spec.plan_request())) == []
    assert asyncio.run(memory.action_stats([(SymptomType.OOM_KILLED, None)])) == {}


def test_a_database_that_does_not_answer_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(platform_memory, "OPEN_SECONDS", 0.3)
    # A server that takes the connection and never says a word (its backlog accepts it).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        url = f"postgresql://duet:hunter2zebra@127.0.0.1:{port}/duet?connect_timeout=3"
        memory = asyncio.run(PlatformMemory.start(settings_for(url)))
    assert not memory.enabled
    assert "did not open within 0.3 s; the operator runs without it" in caplog.text
    assert "hunter2zebra" not in caplog.text


def test_a_disabled_memory_opens_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    memory = PlatformMemory.open(settings_for(url, enabled=False))
    assert not memory.enabled
    assert not (tmp_path / "memory.db").exists()


def test_records_reach_the_store_and_a_platform_planned_before_gets_its_design(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    memory = PlatformMemory.open(settings_for(url))
    assert memory.enabled
    # Planned by an operator without memory: the store has never heard of it.
    before = clicks()
    planned = plan_platform(before, PRICES)
    running = with_status(before, design=planned.design, plan_hash=planned.plan_hash)
    record = RemediationRecord(
        name="clicks-oom-1",
        symptom=SymptomType.OOM_KILLED,
        component=Component.CLICKHOUSE,
        action=ActionType.RAISE_MEMORY,
        before=planned.design.clickhouse.resources.memory if planned.design else None,
        after="96Gi",
        phase=DecisionPhase.VERIFIED,
        decided_at=NOW,
    )

    async def scenario() -> Any:
        await memory.record_remediations(running, [record])
        new = clicks("views", "ads", requirements={"dataVolume": "2200Gi"})
        lessons = await memory.lessons_for(new.spec.plan_request())
        stats = await memory.action_stats([(SymptomType.OOM_KILLED, Component.CLICKHOUSE)])
        return lessons, stats

    lessons, stats = asyncio.run(scenario())
    memory.close()
    assert [lesson.pattern for lesson in lessons] == [PATTERN]
    assert lessons[0].evidence[0].platform == "shop/clicks"
    key = (SymptomType.OOM_KILLED, Component.CLICKHOUSE)
    assert stats[key][ActionType.RAISE_MEMORY].verified == 1


def test_a_store_that_does_not_answer_in_time_is_gone_around(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "memory.db"
    memory = PlatformMemory.open(settings_for(f"sqlite:///{path}", timeout_seconds=0.2))
    p = clicks()
    design = plan_platform(p, PRICES).design
    assert design is not None
    # Another writer holds the write lock: the memory's write waits (up to 30 s) for it.
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")

    async def scenario() -> list[Any]:
        await asyncio.wait_for(memory.record_design(p, design), timeout=10)
        holder.execute("ROLLBACK")  # the caller went on; the lock goes, the write lands
        return await memory.lessons_for(p.spec.plan_request())

    try:
        assert asyncio.run(scenario()) == []
    finally:
        holder.close()
    assert "recording a design took longer than 0.2 s; going on without it" in caplog.text
    memory.close()
    landed = sqlite3.connect(path)
    try:
        assert landed.execute("SELECT platform FROM designs").fetchall() == [("shop/clicks",)]
    finally:
        landed.close()


# -- descriptions compared by meaning -------------------------------------------------------------

# The same workload in other words: not one content word in common, so by their word hashes
# the two have nothing alike; by the model's embeddings they are close (cosine about 0.6).
SHOP = "Clickstream analytics for the web shop, dashboards under a second"
VISITORS = "Tracking what visitors click on our website, for fast reporting charts"
# 2Ti and 8Ti: requirement closeness 0.6. Both described, the similarity is 3/4 of it plus
# 1/4 of the descriptions': 0.45 with nothing alike (below the policy's 0.5), above by meaning.
NEAR = 0.6


def described(name: str, namespace: str, volume: str, description: str) -> DataPlatform:
    return clicks(
        name,
        namespace,
        description=description,
        requirements={"dataVolume": volume, "ingestRowsPerSecond": 50_000},
    )


def oom_fixed_through(memory: PlatformMemory, p: DataPlatform) -> None:
    """`oom_fixed`, recorded the operator's way: the design, then the verified raise."""
    design = capacity.plan(p.spec.plan_request(), PRICES)
    record = RemediationRecord(
        name=f"{p.metadata.name}-oom-1",
        symptom=SymptomType.OOM_KILLED,
        component=Component.CLICKHOUSE,
        action=ActionType.RAISE_MEMORY,
        before=design.clickhouse.resources.memory,
        after=f"{memory_gib(design=design) * 3 // 2}Gi",
        phase=DecisionPhase.VERIFIED,
        decided_at=NOW + timedelta(minutes=5),
    )

    async def scenario() -> None:
        await memory.record_design(p, design, now=NOW)
        await memory.record_remediations(p, [record])

    asyncio.run(scenario())


def counted(loads: list[str]) -> Any:
    """The real model's loader, counting its calls."""

    def load() -> Any:
        loads.append("load")
        return load_description_model()

    return load


def embeddings_of(path: Path) -> list[Any]:
    """Each recorded design's embedding (a JSON column), in the order recorded."""
    database = sqlite3.connect(path)
    try:
        rows = database.execute("SELECT embedding FROM designs ORDER BY id").fetchall()
    finally:
        database.close()
    return [json.loads(row[0]) if row[0] is not None else None for row in rows]


def test_descriptions_in_other_words_are_similar_by_meaning_and_not_by_words(
    tmp_path: Path,
) -> None:
    first, new = (
        described("clicks", "shop", "2Ti", SHOP),
        described("visits", "ads", "8Ti", VISITORS),
    )
    # Generous timeouts: this test is about what is compared, not about how fast.
    by_meaning = PlatformMemory.open(
        settings_for(f"sqlite:///{tmp_path / 'a.db'}", timeout_seconds=60)
    )
    oom_fixed_through(by_meaning, first)
    (lesson,) = asyncio.run(by_meaning.lessons_for(new.spec.plan_request()))
    by_meaning.close()
    assert lesson.pattern == PATTERN
    (evidence,) = lesson.evidence
    assert evidence.platform == "shop/clicks"
    model = load_description_model()
    assert model is not None
    shop, visitors = model.embed([SHOP, VISITORS])
    cosine = math.fsum(a * b for a, b in zip(shop, visitors, strict=True))
    assert evidence.similarity == pytest.approx(0.75 * NEAR + 0.25 * cosine, abs=1e-3)
    # The record carries the description's embedding, not its text.
    (stored,) = embeddings_of(tmp_path / "a.db")
    assert stored == pytest.approx(list(shop), abs=1e-6)

    words_only = settings_for("sqlite://", timeout_seconds=60, embeddings=False)
    loads: list[str] = []
    by_words = PlatformMemory(
        MemoryStore.open(f"sqlite:///{tmp_path / 'b.db'}"), words_only, load_model=counted(loads)
    )
    oom_fixed_through(by_words, first)
    assert asyncio.run(by_words.lessons_for(new.spec.plan_request())) == []
    # Said in the same words, the two are alike again.
    alike = described("visits", "ads", "8Ti", SHOP)
    (lesson,) = asyncio.run(by_words.lessons_for(alike.spec.plan_request()))
    assert lesson.evidence[0].similarity == pytest.approx(0.75 * NEAR + 0.25, abs=1e-3)
    by_words.close()
    assert loads == []  # off: never loaded
    assert embeddings_of(tmp_path / "b.db") == [None]


def test_a_lookup_never_waits_for_the_model_and_uses_it_once_loaded(
    tmp_path: Path, store: MemoryStore
) -> None:
    released = threading.Event()
    loads: list[str] = []

    def slow_load() -> Any:
        loads.append("load")
        released.wait(timeout=60)
        return load_description_model()

    # The first platform recorded by another operator whose model was loaded.
    first = described("clicks", "shop", "2Ti", SHOP)
    model = load_description_model()
    request = first.spec.plan_request()
    design = capacity.plan(request, PRICES)
    store.record_design(platform_key(first), request, design, recorded_at=NOW, embedder=model)
    oom_fixed_remediation = RemediationRecord(
        name="clicks-oom-1",
        symptom=SymptomType.OOM_KILLED,
        component=Component.CLICKHOUSE,
        action=ActionType.RAISE_MEMORY,
        before=design.clickhouse.resources.memory,
        after="96Gi",
        phase=DecisionPhase.VERIFIED,
        decided_at=NOW,
    )
    store.record_remediation(platform_key(first), oom_fixed_remediation)
    memory = PlatformMemory(
        store, settings_for("sqlite://", timeout_seconds=60), load_model=slow_load
    )
    new = described("visits", "ads", "8Ti", VISITORS).spec.plan_request()

    async def scenario() -> tuple[list[Any], list[Any]]:
        # The model is still loading: this lookup compares by words and finds nothing.
        before = await memory.lessons_for(new)
        released.set()
        assert await memory.model_loaded() is not None
        return before, await memory.lessons_for(new)

    try:
        before, after = asyncio.run(scenario())
    finally:
        released.set()
        memory.close()
    assert before == []
    assert [lesson.pattern for lesson in after] == [PATTERN]
    assert loads == ["load"]


def test_without_descriptions_the_model_is_never_loaded(tmp_path: Path) -> None:
    loads: list[str] = []
    store = MemoryStore.open(f"sqlite:///{tmp_path / 'memory.db'}")
    settings = settings_for("sqlite://", timeout_seconds=60)
    memory = PlatformMemory(store, settings, load_model=counted(loads))
    oom_fixed_through(memory, clicks())
    assert asyncio.run(memory.lessons_for(clicks("views", "ads").spec.plan_request()))
    memory.close()
    assert loads == []
    assert memory.model.untried


def test_a_model_that_cannot_be_loaded_is_said_once_and_words_are_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Any:
        raise OSError("model.safetensors: truncated file")

    store = MemoryStore.open(f"sqlite:///{tmp_path / 'memory.db'}")
    memory = PlatformMemory(store, settings_for("sqlite://", timeout_seconds=60), load_model=broken)
    oom_fixed_through(memory, described("clicks", "shop", "2Ti", SHOP))
    oom_fixed_through(memory, described("orders", "shop", "2Ti", VISITORS))
    (lesson,) = asyncio.run(
        memory.lessons_for(described("visits", "ads", "8Ti", SHOP).spec.plan_request())
    )
    memory.close()
    # By words: the platform said the same words is the similar one.
    assert [e.platform for e in lesson.evidence] == ["shop/clicks"]
    (said,) = [r.getMessage() for r in caplog.records if "description model" in r.getMessage()]
    assert said == (
        "memory: the description model cannot be loaded (OSError: model.safetensors: "
        "truncated file); descriptions are compared by their words"
    )
    assert embeddings_of(tmp_path / "memory.db") == [None, None]


# -- the healer's records ------------------------------------------------------------------------


def oom_remediation(phase: str, *, labelled: bool = True, **status: Any) -> Remediation:
    """The Remediation the healer makes of an OOM-killed ClickHouse replica of `web`."""
    web = platform("web", "analytics", autonomy={"mode": "auto"})
    seen = shard("ok", "oom")
    diagnoses = diagnose(seen, detect(seen, NOW), now=NOW)
    (decision,) = decide(diagnoses, autonomy=autonomy_of(web), history=[], now=NOW)
    body = remediation_body(web, decision, "web-oom-1", autonomy_of(web).mode)
    if not labelled:
        del body["metadata"]["labels"][COMPONENT_LABEL]
    body["metadata"]["creationTimestamp"] = NOW.isoformat()
    body["status"] = {"phase": phase} | status
    return Remediation.model_validate(body)


NAMES = Names("web", "analytics", "cluster.local")


def test_a_remediation_is_recorded_as_sizes_and_enums() -> None:
    verified = oom_remediation("Verified")
    assert verified.metadata.labels[COMPONENT_LABEL] == "clickhouse"
    record = memory_record(verified, NAMES, NOW)
    assert (record.symptom, record.component, record.action, record.phase) == (
        SymptomType.OOM_KILLED,
        Component.CLICKHOUSE,
        ActionType.RAISE_MEMORY,
        DecisionPhase.VERIFIED,
    )
    parameters = verified.spec.action.parameters
    assert (record.before, record.after) == (parameters["from"], parameters["to"])
    assert record.decided_at == NOW
    # A record made before the label: the component from the StatefulSet the action names.
    legacy = memory_record(oom_remediation("Verified", labelled=False), NAMES, NOW)
    assert legacy.component is Component.CLICKHOUSE


def test_a_decision_this_version_could_not_execute_is_not_a_failed_remedy() -> None:
    condition = {
        "type": "Applied",
        "status": "False",
        "reason": NOT_EXECUTABLE,
        "message": "cannot",
        "lastTransitionTime": NOW.isoformat(),
    }
    record = memory_record(oom_remediation("Failed", conditions=[condition]), NAMES, NOW)
    assert record.phase is DecisionPhase.REJECTED
    assert memory_record(oom_remediation("Failed"), NAMES, NOW).phase is DecisionPhase.FAILED


def test_only_records_made_or_moved_in_the_pass_are_recorded() -> None:
    pending, applied = oom_remediation("Pending"), oom_remediation("Applied")
    other = applied.model_copy(
        update={"metadata": applied.metadata.model_copy(update={"name": "web-oom-2"})}
    )
    phases = {"web-oom-1": RemediationPhase.PENDING, "web-oom-2": RemediationPhase.APPLIED}
    assert moved([pending, other], phases) == []
    assert moved([applied, other], phases) == [applied]
    assert moved([applied], {}) == [applied]
