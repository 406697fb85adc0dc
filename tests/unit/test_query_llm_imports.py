"""A query server on the built-in engine never loads LangGraph or a model SDK (about 100 MB
and two seconds): they load on the first question to a model engine."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from duet_agents.query.server import create_app
from duet_agents.query.settings import QueryServerSettings
import duet_operator.cli
create_app(QueryServerSettings(database_url="chdb://", engine="openai", model="gpt-4.1"))
heavy = ("langgraph", "openai", "anthropic", "duet_agents.query.llm", "duet_agents.llm.factory")
print(",".join(m for m in heavy if m in sys.modules))
"""


def test_the_model_engine_loads_only_when_asked() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""
