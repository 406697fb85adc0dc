"""The scripted chat model the planner's tests use: it answers like a real provider would."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from duet_agents.llm.base import LLMBadOutput, LLMTimeout, LLMUnavailable, Message, Usage
from duet_agents.llm.fake import Reply, ScriptedChatModel

pytestmark = pytest.mark.anyio


class Pick(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shards: int


async def ask(model: ScriptedChatModel, content: str = "q") -> Pick:
    answer = await model.structured(
        system="sys", messages=[Message(role="user", content=content)], schema=Pick, tool_name="t"
    )
    return answer.value


async def test_answers_in_order_and_records_each_call() -> None:
    model = ScriptedChatModel([Pick(shards=1), {"shards": 2}, '{"shards": 3}'])
    assert [await ask(model, f"q{n}") for n in range(3)] == [Pick(shards=n) for n in (1, 2, 3)]
    assert [call.messages[0].content for call in model.calls] == ["q0", "q1", "q2"]
    assert {(call.system, call.schema, call.tool_name) for call in model.calls} == {
        ("sys", Pick, "t")
    }


async def test_scripted_answers_are_validated_like_a_providers() -> None:
    model = ScriptedChatModel([Reply({"shards": 2, "extra": 1}, Usage(input_tokens=9))])
    with pytest.raises(LLMBadOutput) as caught:
        await ask(model)
    assert caught.value.usage == Usage(input_tokens=9)
    assert caught.value.problems == ["extra: Extra inputs are not permitted"]


async def test_a_scripted_error_is_raised_and_an_empty_script_is_unavailable() -> None:
    model = ScriptedChatModel([LLMTimeout("slow", provider="fake", model="scripted")])
    with pytest.raises(LLMTimeout):
        await ask(model)
    with pytest.raises(LLMUnavailable, match="no more answers"):
        await ask(model)
    assert len(model.calls) == 2
