"""Any OpenAI-compatible chat-completions endpoint (`openai.AsyncOpenAI` with a `base_url`):
OpenAI itself, vLLM, Ollama, LiteLLM, GLM and the like.

Structured output is a forced call of one function tool, which compatible servers support far
more widely than `response_format` JSON schemas; a server that answers with message content
instead has the JSON taken from the content. Retries with backoff on 408/409/429/5xx,
connection errors and timeouts are the SDK's own (`max_retries`), honouring `retry-after`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import openai
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
    ChatCompletionToolParam,
)
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
    json_in_text,
    parse_arguments,
    redact,
    tool_description,
    tool_schema,
)

T = TypeVar("T", bound=BaseModel)

PROVIDER = "openai"


class OpenAIChatModel:
    """A model behind an OpenAI-compatible endpoint. `api_key` and `base_url` default to
    `OPENAI_API_KEY` and `OPENAI_BASE_URL`, as the SDK reads them."""

    provider = PROVIDER

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self._client: openai.AsyncOpenAI | None = None
        self._problem: str | None = None
        try:
            self._client = openai.AsyncOpenAI(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
            )
        except openai.OpenAIError as e:
            # The SDK refuses to start without a key; report that on the first call, where
            # the caller handles every other model failure, instead of at construction.
            self._problem = redact(str(e), [api_key or ""])

    def __repr__(self) -> str:
        base_url = str(self._client.base_url) if self._client is not None else None
        return f"OpenAIChatModel(model={self.model!r}, base_url={base_url!r})"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def structured(
        self, *, system: str, messages: list[Message], schema: type[T], tool_name: str
    ) -> Completion[T]:
        if self._client is None:
            raise LLMRejected(
                f"not configured ({self._problem}): set OPENAI_API_KEY or the planner's secretRef",
                provider=PROVIDER,
                model=self.model,
            )
        tool: ChatCompletionToolParam = {
            "type": "function",
            "function": {
                "name": tool_name,
                "description": tool_description(schema),
                "parameters": tool_schema(schema),
            },
        }
        choice: ChatCompletionNamedToolChoiceParam = {
            "type": "function",
            "function": {"name": tool_name},
        }
        turns: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
        for m in messages:
            if m.role == "user":
                turns.append({"role": "user", "content": m.content})
            else:
                turns.append({"role": "assistant", "content": m.content})
        try:
            reply = await self._client.chat.completions.create(
                model=self.model, messages=turns, tools=[tool], tool_choice=choice
            )
        except openai.OpenAIError as e:
            raise self._error(e) from e
        usage = Usage(
            input_tokens=reply.usage.prompt_tokens if reply.usage else 0,
            output_tokens=reply.usage.completion_tokens if reply.usage else 0,
        )
        if not reply.choices:
            raise self._bad("the answer has no choices", "", tool_name, usage)
        message = reply.choices[0].message
        for call in message.tool_calls or []:
            if call.type == "function" and call.function.name == tool_name:
                return parse_arguments(
                    call.function.arguments,
                    schema,
                    provider=PROVIDER,
                    model=self.model,
                    usage=usage,
                )
        content = message.content or ""
        found = json_in_text(content)
        if found is None:
            raise self._bad(
                f"the answer did not call the tool {tool_name}", content, tool_name, usage
            )
        return parse_arguments(found, schema, provider=PROVIDER, model=self.model, usage=usage)

    def _bad(self, message: str, raw: str, tool_name: str, usage: Usage) -> LLMBadOutput:
        return LLMBadOutput(
            message,
            provider=PROVIDER,
            model=self.model,
            raw=raw,
            problems=[f"answer with a call of the tool {tool_name} (or one JSON object)"],
            usage=usage,
        )

    def _error(self, error: openai.OpenAIError) -> LLMError:
        where: dict[str, Any] = {"provider": PROVIDER, "model": self.model}
        secrets = [self._client.api_key if self._client is not None else ""]
        if isinstance(error, openai.APITimeoutError):
            return LLMTimeout("no answer within the timeout, after retries", **where)
        if isinstance(error, openai.APIConnectionError):
            return LLMUnavailable(f"cannot connect: {redact(str(error), secrets)}", **where)
        if isinstance(error, openai.APIStatusError):
            message = f"HTTP {error.status_code}: {redact(_api_message(error), secrets)}"
            if error.status_code == 429:
                return LLMRateLimited(message, **where)
            if error.status_code >= 500:
                return LLMUnavailable(message, **where)
            return LLMRejected(message, **where)
        return LLMUnavailable(redact(str(error), secrets), **where)


def _api_message(error: openai.APIStatusError) -> str:
    """`error.message` of the body when the server sent the usual shape, else the SDK's text."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(error)
