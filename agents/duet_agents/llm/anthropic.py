"""Claude through the Anthropic Messages API (`anthropic.AsyncAnthropic`).

Structured output is one tool whose `input_schema` is the schema's JSON schema, with
`tool_choice` forcing the model to call it: the tool's input is the answer. Retries with
backoff on 408/409/429/5xx, connection errors and timeouts are the SDK's own (`max_retries`),
honouring the server's `retry-after`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import anthropic
from anthropic.types import MessageParam, ToolChoiceToolParam, ToolParam
from pydantic import BaseModel

from duet_agents.llm.base import (
    Completion,
    LLMBadOutput,
    LLMError,
    LLMRateLimited,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
    Message,
    Usage,
    parse_arguments,
    redact,
    tool_description,
    tool_schema,
)

T = TypeVar("T", bound=BaseModel)

PROVIDER = "anthropic"
DEFAULT_MAX_TOKENS = 4096


class AnthropicChatModel:
    """A Claude model. `api_key` and `base_url` default to `ANTHROPIC_API_KEY` and
    `ANTHROPIC_BASE_URL`, as the SDK reads them."""

    provider = PROVIDER

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.model = model
        self._max_tokens = max_tokens
        self._client: anthropic.AsyncAnthropic | None = None
        self._problem = "no API key"
        try:
            client = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
            )
        except anthropic.AnthropicError as e:
            # Without a key the SDK looks for credential profiles on disk and can refuse to
            # start; report that on the first call, where the caller handles every other
            # model failure, instead of at construction.
            self._problem = redact(str(e), [api_key or ""])
        else:
            # With nothing to authenticate with, never send a request: the SDK would fail it
            # with a TypeError of its own.
            if client.api_key or client.auth_token or client.credentials:
                self._client = client

    def __repr__(self) -> str:
        base_url = str(self._client.base_url) if self._client is not None else None
        return f"AnthropicChatModel(model={self.model!r}, base_url={base_url!r})"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def structured(
        self, *, system: str, messages: list[Message], schema: type[T], tool_name: str
    ) -> Completion[T]:
        if self._client is None:
            raise LLMRejected(
                f"not configured ({self._problem}): set ANTHROPIC_API_KEY or the planner's "
                "secretRef",
                provider=PROVIDER,
                model=self.model,
            )
        tool: ToolParam = {
            "name": tool_name,
            "description": tool_description(schema),
            "input_schema": tool_schema(schema),
        }
        choice: ToolChoiceToolParam = {"type": "tool", "name": tool_name}
        turns: list[MessageParam] = [_turn(m) for m in messages]
        try:
            reply = await self._client.messages.create(
                model=self.model,
                max_tokens=self._max_tokens,
                system=system,
                messages=turns,
                tools=[tool],
                tool_choice=choice,
            )
        except anthropic.AnthropicError as e:
            raise self._error(e) from e
        usage = Usage(
            input_tokens=reply.usage.input_tokens, output_tokens=reply.usage.output_tokens
        )
        for block in reply.content:
            if block.type == "tool_use" and block.name == tool_name:
                return parse_arguments(
                    block.input, schema, provider=PROVIDER, model=self.model, usage=usage
                )
        text = "".join(block.text for block in reply.content if block.type == "text")
        raise LLMBadOutput(
            f"the answer did not call the tool {tool_name} (stop reason {reply.stop_reason})",
            provider=PROVIDER,
            model=self.model,
            raw=text,
            problems=[f"answer with a call of the tool {tool_name}, not with text"],
            usage=usage,
        )

    def _error(self, error: anthropic.AnthropicError) -> LLMError:
        where: dict[str, Any] = {"provider": PROVIDER, "model": self.model}
        client = self._client
        secrets = [client.api_key or "", client.auth_token or ""] if client is not None else []
        if isinstance(error, anthropic.APITimeoutError):
            return LLMTimeout("no answer within the timeout, after retries", **where)
        if isinstance(error, anthropic.APIConnectionError):
            return LLMUnavailable(f"cannot connect: {redact(str(error), secrets)}", **where)
        if isinstance(error, anthropic.APIStatusError):
            detail = redact(error.api_message or str(error), secrets)
            message = f"HTTP {error.status_code}: {detail}"
            if error.status_code == 429:
                return LLMRateLimited(message, **where)
            if error.status_code >= 500:
                return LLMUnavailable(message, **where)
            return LLMRejected(message, **where)
        return LLMUnavailable(redact(str(error), secrets), **where)


def _turn(message: Message) -> MessageParam:
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}
