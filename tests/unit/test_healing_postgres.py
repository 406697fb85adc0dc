"""Which PostgreSQL pod the healer takes for the primary, and the ordinals a promotion names:
the same choice the rendering makes (render/postgres.py), or the two would disagree."""

from __future__ import annotations

import pytest

from duet_operator.healing import postgres_ordinal, postgres_primary_pod
from duet_operator.models.dataplatform import DataPlatformStatus
from duet_operator.render.naming import Names
from tests.support.platforms import design, platform

NAMES = Names("clicks", "analytics")


@pytest.mark.parametrize(
    ("pod", "ordinal"),
    [
        ("clicks-postgres-0", 0),
        ("clicks-postgres-12", 12),
        ("clicks-postgres-", None),
        ("clicks-postgres-x", None),
        ("other-postgres-1", None),
        ("clicks-clickhouse-0-1", None),
    ],
)
def test_a_promotion_names_one_of_the_platforms_postgres_pods(
    pod: str, ordinal: int | None
) -> None:
    assert postgres_ordinal(NAMES, pod) == ordinal


@pytest.mark.parametrize(
    ("promoted", "instances", "primary"),
    [(None, 2, "clicks-postgres-0"), (1, 2, "clicks-postgres-1"), (2, 2, "clicks-postgres-0")],
)
def test_the_primary_is_the_promoted_instance_while_the_design_has_it(
    promoted: int | None, instances: int, primary: str
) -> None:
    status = DataPlatformStatus(
        design=design(postgres_instances=instances), postgres_primary=promoted
    )
    p = platform().model_copy(update={"status": status})
    assert postgres_primary_pod(p, NAMES) == primary


def test_no_primary_without_a_design() -> None:
    assert postgres_primary_pod(platform(), NAMES) is None
