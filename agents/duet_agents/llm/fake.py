"""A scripted `ChatModel` for tests: answers from a queue, records every call.

Each scripted answer is validated against the schema asked for exactly as the real providers
validate tool arguments, so a script exercises the same bad-output path as a real model.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from duet_agents.llm.base import Completion, LLMUnavailable, Message, Usage
from duet_agents.llm.base import parse_arguments as _parse

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a pydantic object, a JSON-able mapping, raw text (the tool call's
    arguments, possibly invalid), or an exception to raise (an `LLMError`, or anything a
    broken client might raise); and the tokens it reports."""

    answer: BaseModel | Mapping[str, Any] | str | Exception
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Call:
    """What one call of `structured` was given."""

    system: str
    messages: tuple[Message, ...]
    schema: type[BaseModel]
    tool_name: str


class ScriptedChatModel:
    """Answers with `script`, in order; a call past its end raises `LLMUnavailable`."""

    def __init__(
        self,
        script: Iterable[Reply | BaseModel | Mapping[str, Any] | str | Exception],
        *,
        provider: str = "fake",
        model: str = "scripted",
    ) -> None:
        self.provider = provider
        self.model = model
        self._script = deque(item if isinstance(item, Reply) else Reply(item) for item in script)
        self.calls: list[Call] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"ScriptedChatModel(provider={self.provider!r}, model={self.model!r})"

    @property
    def remaining(self) -> int:
        return len(self._script)

    async def aclose(self) -> None:
        self.closed = True

    async def structured(
        self, *, system: str, messages: list[Message], schema: type[T], tool_name: str
    ) -> Completion[T]:
        self.calls.append(Call(system, tuple(messages), schema, tool_name))
        if not self._script:
            raise LLMUnavailable(
                "the script has no more answers", provider=self.provider, model=self.model
            )
        reply = self._script.popleft()
        answer = reply.answer
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, BaseModel):
            answer = json.dumps(answer.model_dump(mode="json", by_alias=True))
        return _parse(answer, schema, provider=self.provider, model=self.model, usage=reply.usage)
